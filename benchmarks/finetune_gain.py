"""Self-calibrated fine-tuning on a stack whose conditions lie outside the bundled model's
training ranges: 65 nm pixels (a 6.5 µm sCMOS behind 100x), PSF sigma 150 nm = 2.3 px (the
bundled model saw 100 nm pixels and sigma 1.0-1.6 px), density 1 /µm². What the Fine-tune
widget does, from the command line: estimate the conditions from the bundled model's
confident detections on stack A, fine-tune on matching simulations (with --trusted: on stack A
itself and its true emitters, as the widget's trusted positions), then score both models on
stack B (another seed, never used) against its truth.

Run: .venv/bin/python benchmarks/finetune_gain.py [--steps 300] [--out DIR] [--trusted]
Prints the estimated conditions, the wall time and a table; asserts nothing.
"""

import argparse
import tempfile
import time

import numpy as np

from napari_var_emitter.evaluate.metrics import evaluate
from napari_var_emitter.io.camera import Camera
from napari_var_emitter.model.checkpoint import BUNDLED, load_model
from napari_var_emitter.predict import predict_frames
from napari_var_emitter.plugin.finetune_widget import fine_tune_config
from napari_var_emitter.psf import PSF
from napari_var_emitter.simulate.config import SimulationConfig
from napari_var_emitter.simulate.stack import simulate_stack
from napari_var_emitter.train.calibrate import self_calibrated_source, trusted_positions_source
from napari_var_emitter.train.loop import train

CAMERA = Camera(pixel_size_nm=65.0, baseline_adu=100.0, e_per_adu=0.5, read_noise_e=1.5)
CONDITIONS = SimulationConfig(frame_size=(128, 128), n_frames=60, density_per_um2=1.0, photons_mean=3000.0,
                              background_photons=30.0, psf=PSF(sigma_nm=150.0), camera=CAMERA)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", default=None)
    parser.add_argument("--trusted", action="store_true", help="fine-tune on stack A and its truth")
    args = parser.parse_args()
    stack_a, truth_a = simulate_stack(CONDITIONS, np.random.default_rng(11_000_000))
    stack_b, truth_b = simulate_stack(CONDITIONS, np.random.default_rng(11_000_001))
    bundled, _ = load_model()
    started = time.perf_counter()
    source, conditions, ranges = (trusted_positions_source(stack_a, truth_a.emitters, CAMERA, bundled) if args.trusted
                                  else self_calibrated_source(stack_a, CAMERA, bundled))
    print("estimated from stack A:", {k: round(v, 3) if isinstance(v, float) else v for k, v in conditions.items()})
    out = args.out or tempfile.mkdtemp(prefix="finetune_")
    weights = train(fine_tune_config(args.steps, 2e-4, ranges), out, source, init_weights=BUNDLED, log=lambda _: None)
    print(f"fine-tuned {args.steps} steps in {time.perf_counter() - started:.0f} s (estimate + training) -> {weights}")
    tuned, _ = load_model(weights)
    print("| model | Jaccard % | recall | precision | RMSE lat nm | RMSE/CRLB | efficiency |")
    print("|---|---|---|---|---|---|---|")
    for name, model in (("bundled", bundled), ("fine-tuned", tuned)):
        r = evaluate(predict_frames(model, stack_b, CAMERA).table, truth_b)
        print(f"| {name} | {r['jaccard']:.1f} | {r['recall']:.3f} | {r['precision']:.3f} | "
              f"{r['rmse_lateral_nm']:.1f} | {r['rmse_over_crlb']:.2f} | {r['efficiency_lateral']:.1f} |")


if __name__ == "__main__":
    main()
