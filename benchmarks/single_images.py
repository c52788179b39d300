"""A model on single images: each frame of a stack whose frames are simulated each on its own
(other emitters in each), predicted alone as a one-frame image, against the same frames given as
one stack. A model that looks at the frames beside each frame sees a single image as its own
neighbours; this measures what that costs it.

Per density: Jaccard, lateral RMSE over every match, and lateral RMSE over the true emitters that
both ways find (nm). 128x128 px, 100 nm pixels, PSF sigma 130 nm (given, so both ways fit with
the same), 2,000 photons, background 50 photons/px, sCMOS; refinement on (--no-refine: the
network's positions). With --against MODEL, also that model on each frame alone, and the two
models' RMSE over the true emitters both find (the bundling rule's column, docs/model.md). With
--storm-like: 160 nm pixels, PSF sigma 160 nm (1 px), 3,000 photons and 1 e-/ADU, as the
storm-analysis test movies (`test_l1h` is one such frame at 1.2 emitters/µm²).

Seeds: validation (12,001,504+ by default); nothing held out is used.

Run: .venv/bin/python benchmarks/single_images.py [--model PATH] [--densities 0.5 1 2 4] [--frames 20]
     [--seed-base N] [--no-refine] [--against PATH | bundled] [--storm-like]
Prints one row per density and way; asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import warnings

import numpy as np
import pandas as pd
from compare_models import matched_errors_nm, rmse
from external import FAR_NM

from napari_var_emitter.evaluate.matching import match_frames
from napari_var_emitter.io.camera import Camera
from napari_var_emitter.predict import PredictOptions, predict
from napari_var_emitter.psf import PSF
from napari_var_emitter.simulate.config import SimulationConfig
from napari_var_emitter.simulate.stack import simulate_independent_frames

SIGMA_NM = 130.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="weights (default: bundled)")
    parser.add_argument("--densities", type=float, nargs="+", default=[0.5, 1.0, 2.0, 4.0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--seed-base", type=int, default=12_001_504)
    parser.add_argument("--no-refine", action="store_true", help="the network's positions, without the refinement")
    parser.add_argument("--against", help="another model (weights, or 'bundled') on each frame alone")
    parser.add_argument("--storm-like", action="store_true",
                        help="as storm-analysis's test movies: 160 nm pixels, PSF sigma 1 px, 3,000 photons, 1 e-/ADU")
    args = parser.parse_args()
    storm_like = (160.0, 160.0, 3000.0, 1.0)  # pixel nm, PSF sigma nm, photons, e-/ADU
    pixel_nm, sigma_nm, photons, e_per_adu = storm_like if args.storm_like else (100.0, SIGMA_NM, 2000.0, 0.5)
    camera = Camera(pixel_size_nm=pixel_nm, e_per_adu=e_per_adu, read_noise_e=1.5)
    options = PredictOptions(model=args.model, psf_sigma_nm=sigma_nm, refine=not args.no_refine)
    warnings.filterwarnings("ignore", message="this model looks at each frame beside")
    print("(a window model not trained on single images warns that it sees one as its own neighbours)")
    for k, density in enumerate(args.densities):
        config = SimulationConfig(frame_size=(128, 128), n_frames=args.frames, density_per_um2=density,
                                  photons_mean=photons, background_photons=50.0, psf=PSF(sigma_nm=sigma_nm),
                                  camera=camera)
        frames, truth = simulate_independent_frames(config, np.random.default_rng(args.seed_base + k))[:2]
        truth = truth.emitters.reset_index(drop=True)
        tables = {"as a stack": predict(frames, camera, options).table,
                  "each alone": each_alone(frames, camera, options)}
        report(tables, truth, ("as a stack", "each alone"), f"density {density:g} /µm² {args.frames} frames")
        if args.against:
            other = dataclasses.replace(options, model=None if args.against == "bundled" else args.against)
            tables = {"each alone": tables["each alone"], "other alone": each_alone(frames, camera, other)}
            report(tables, truth, tuple(tables), f"against {args.against}: density {density:g} /µm²")


def each_alone(frames: np.ndarray, camera: Camera, options: PredictOptions) -> pd.DataFrame:
    """Every frame predicted on its own, as a one-frame image; frames 0-based as in the stack."""
    return pd.concat([predict(frames[t:t + 1], camera, options).table.assign(frame=t) for t in range(len(frames))],
                     ignore_index=True)


def report(tables: dict[str, pd.DataFrame], truth: pd.DataFrame, pair: tuple[str, str], heading: str) -> None:
    """Per table: Jaccard, RMSE over every match and over the true emitters both tables of `pair` match, and
    the sd of each match's error over the uncertainty its row states, per axis (1 where they hold)."""
    errors = {way: matched_errors_nm(table, truth) for way, table in tables.items()}
    both = errors[pair[0]].index.intersection(errors[pair[1]].index)
    for way, table in tables.items():
        matched = errors[way]
        jaccard = 100 * len(matched) / (len(table) + len(truth) - len(matched))
        print(f"{heading} [{way:>11}] Jaccard {jaccard:6.2f} %  RMSE {rmse(matched.to_numpy()):6.2f} nm  "
              f"over both ({len(both)}) {rmse(matched.loc[both].to_numpy()):6.2f} nm  "
              f"error / uncertainty sd {pull_sd(table, truth)}", flush=True)


def pull_sd(table: pd.DataFrame, truth: pd.DataFrame) -> str:
    """'x / y': the sd of (error / stated uncertainty) over the matched rows of `table`, per axis."""
    if "uncertainty_x_nm" not in table:
        return "-"
    p, t = match_frames(table, truth, FAR_NM)
    pulls = [(table[f"{a}_nm"].to_numpy()[p] - truth[f"{a}_nm"].to_numpy()[t])
             / table[f"uncertainty_{a}_nm"].to_numpy()[p] for a in "xy"]
    return " / ".join(f"{np.std(pull):.2f}" for pull in pulls)


if __name__ == "__main__":
    main()
