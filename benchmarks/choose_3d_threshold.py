"""Choose a 3-D model's detection threshold on validation stacks only (seeds 6,100,000+): six
calibrations drawn from the model's own training family (none of the benchmark grid's three,
none of NAIRR's), densities 0.1 / 0.5 / 2 per µm², photons 1,500-6,000 and background 10-100
photons/px drawn per stack, 40 frames of 64 x 64 px each, sCMOS. Each stack is predicted once
at threshold 0.05; a threshold t keeps the detections whose integrated probability is >= t,
which is exactly what predicting at t gives (detections are the probability's local maxima,
whatever the threshold). Scored as the grid is (true emitters >= 1,000 photons).

The rule: the threshold with the highest mean Jaccard over the 18 stacks (ties: the lower).

Run: .venv/bin/python benchmarks/choose_3d_threshold.py --model RUN/model.safetensors
(prints the sweep and the threshold it chose; asserts nothing)
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

from astigmatic_3d import BEAD_CAMERA
from napari_var_emitter.evaluate.metrics import evaluate
from napari_var_emitter.model.checkpoint import load_model
from napari_var_emitter.predict import PredictOptions, predict_frames
from napari_var_emitter.simulate.config import SimulationConfig
from napari_var_emitter.simulate.stack import simulate_stack
from napari_var_emitter.train.config import TrainConfig

VALIDATION_SEED = 6_100_000
THRESHOLDS = np.round(np.arange(0.1, 0.81, 0.05), 2)
DENSITIES = (0.1, 0.5, 2.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a calibration-conditioned 3-D model (.safetensors)")
    parser.add_argument("--calibrations", type=int, default=6)
    parser.add_argument("--frames", type=int, default=40)
    args = parser.parse_args()
    model, card = load_model(args.model)
    family = TrainConfig.from_dict(card["train_config"]).simulation.psf_family
    if family is None:
        raise SystemExit(f"{args.model} is not conditioned on the calibration (no psf_family)")
    rng, stack_seeds = np.random.default_rng(VALIDATION_SEED), itertools.count(VALIDATION_SEED + 1)
    jaccard = {density: [] for density in DENSITIES}  # per density: (stacks, thresholds)
    for index in range(args.calibrations):
        psf = family.draw(rng)
        for density in DENSITIES:
            photons, background = np.exp(rng.uniform(np.log(1500), np.log(6000))), rng.uniform(10, 100)
            config = SimulationConfig(frame_size=(64, 64), n_frames=args.frames, density_per_um2=density,
                                      photons_mean=float(photons), background_photons=float(background), psf=psf,
                                      camera=BEAD_CAMERA)
            frames, truth = simulate_stack(config, np.random.default_rng(next(stack_seeds)))
            table = predict_frames(model, frames, BEAD_CAMERA, PredictOptions(threshold=0.05, psf=psf)).table
            row = [evaluate(table[table["probability"] >= t], truth, min_photons=1000)["jaccard"] for t in THRESHOLDS]
            jaccard[density].append(row)
            print(f"calibration {index} (sigma0 {psf.curve_x.sigma0_nm:.0f}/{psf.curve_y.sigma0_nm:.0f} nm), "
                  f"{density} /µm², {photons:.0f} photons, {background:.0f}/px: Jaccard at 0.1..0.8 "
                  + " ".join(f"{j:.1f}" for j in row), flush=True)
    per_density = {density: np.mean(rows, axis=0) for density, rows in jaccard.items()}
    mean = np.mean([rows for rows in jaccard.values()], axis=(0, 1))
    print(f"\n{'threshold':>9} " + " ".join(f"{d:>8g}/µm²" for d in DENSITIES) + f" {'mean':>8}")
    for i, t in enumerate(THRESHOLDS):
        print(f"{t:9.2f} " + " ".join(f"{per_density[d][i]:13.2f}" for d in DENSITIES) + f" {mean[i]:8.2f}")
    print(f"\nchosen threshold: {THRESHOLDS[int(np.argmax(mean))]:.2f} (highest mean Jaccard, {mean.max():.2f} %)")


if __name__ == "__main__":
    main()
