"""Issue 11's structured-background check: the same emitters over a flat background and over
structured ones, scored with the project's evaluation.

Background model (simulate/background.py, structured_field): the mean background times a field
that mixes a linear gradient in a random direction, out-of-focus blobs 1-4 um wide and haze at
1 and 4 um, rescaled so the brightest pixel is `contrast` times the dimmest, the mean kept.
Stacks: 160 x 160 px frames, 100 nm pixels, PSF sigma 130 nm, sCMOS (0.5 e-/ADU, read noise
1.5 e-), 2,000 photons per emitter (mean), a mean background of 50 photons/px, at 0.1 and 1
emitters/um^2; for each density one seed (BENCH_SEED + i, which no decision has seen) draws the
emitters, so the flat and the structured stacks hold the same emitters. The bar: precision
>= 0.98 and Jaccard within 2 points of the flat stack's.

Run: .venv/bin/python benchmarks/structured_background.py [--model PATH] [--frames 50]
     [--contrast 4 10] [--seed-base N] [--no-classical]
(--seed-base 12100000+: validation stacks, for decisions; the default seeds are held out.)
Prints a table (model and classical reference); asserts nothing.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from external import far_detections
from napari_var_emitter.classical.localize import localize_stack
from napari_var_emitter.evaluate.metrics import evaluate
from napari_var_emitter.io.camera import Camera
from napari_var_emitter.predict import PredictOptions, predict
from napari_var_emitter.predict.model_cache import cached_model
from napari_var_emitter.psf import PSF
from napari_var_emitter.simulate.config import SimulationConfig
from napari_var_emitter.simulate.stack import simulate_stack

BENCH_SEED = 9_400_000  # accuracy.py uses 9,000,000+, peers.py 9,100,000+
DENSITIES = (0.1, 1.0)  # emitters / um^2
SIGMA_NM, PHOTONS, BACKGROUND = 130.0, 2000.0, 50.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="weights (default: bundled)")
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--contrast", type=float, nargs="+", default=[4.0, 10.0],
                        help="brightest / dimmest background pixel of the structured stacks")
    parser.add_argument("--seed-base", type=int, default=BENCH_SEED)
    parser.add_argument("--no-classical", action="store_true", help="the model only")
    args = parser.parse_args()
    options = PredictOptions(model=args.model)
    model = cached_model(options.weights)[0]
    label = "VAR" if model.config.var_prior else "no-VAR baseline"
    print(f"{options.weights}; {args.frames} frames of 160x160 px per stack, mean background {BACKGROUND:.0f} "
          f"photons/px, {PHOTONS:.0f} photons per emitter")
    print("| /µm² | background | method | Jaccard % | recall | precision | far | RMSE nm | RMSE/CRLB | frames/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for i, density in enumerate(DENSITIES):
        flat_jaccard = {}
        for contrast in [1.0, *args.contrast]:
            config = SimulationConfig(frame_size=160, n_frames=args.frames, density_per_um2=density,
                                      photons_mean=PHOTONS, background_photons=BACKGROUND,
                                      background_contrast=contrast, psf=PSF(sigma_nm=SIGMA_NM),
                                      camera=Camera(e_per_adu=0.5, read_noise_e=1.5))
            frames, truth = simulate_stack(config, np.random.default_rng(args.seed_base + i))
            background = "flat" if contrast == 1 else f"structured, {contrast:g}x"
            for method in (label,) if args.no_classical else (label, "classical"):
                started = time.perf_counter()
                if method == "classical":
                    table = localize_stack(frames, truth.camera, SIGMA_NM)
                else:
                    table = predict(frames, truth.camera, options, model).table
                rate = args.frames / (time.perf_counter() - started)
                r = evaluate(table, truth)
                flat_jaccard.setdefault(method, r["jaccard"])
                change = r["jaccard"] - flat_jaccard[method]
                print(f"| {density:g} | {background} | {method} | {r['jaccard']:.1f}"
                      + (f" ({change:+.1f})" if contrast > 1 else "")
                      + f" | {r['recall']:.3f} | {r['precision']:.3f} | {far_detections(table, truth.emitters)} of "
                      f"{len(table)} | {r['rmse_lateral_nm']:.1f} | {r['rmse_over_crlb']:.2f} | {rate:.1f} |",
                      flush=True)


if __name__ == "__main__":
    main()
