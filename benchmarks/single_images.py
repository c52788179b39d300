"""A model on single images: each frame of a stack whose frames are simulated each on its own
(other emitters in each), predicted alone as a one-frame image, against the same frames given as
one stack. A model that looks at the frames beside each frame sees a single image as its own
neighbours; this measures what that costs it.

Per density: Jaccard, lateral RMSE over every match, and lateral RMSE over the true emitters that
both ways find (nm). 128x128 px, 100 nm pixels, PSF sigma 130 nm (given, so both ways fit with
the same), 2,000 photons, background 50 photons/px, sCMOS; refinement on (--no-refine: the
network's positions).

Seeds: validation (12,001,504+ by default); nothing held out is used.

Run: .venv/bin/python benchmarks/single_images.py [--model PATH] [--densities 0.5 1 2 4] [--frames 20]
     [--seed-base N] [--no-refine]
Prints one row per density and way; asserts nothing.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd
from compare_models import matched_errors_nm, rmse

from napari_var_emitter.io.camera import Camera
from napari_var_emitter.predict import PredictOptions, predict
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
    args = parser.parse_args()
    camera = Camera(e_per_adu=0.5, read_noise_e=1.5)
    options = PredictOptions(model=args.model, psf_sigma_nm=SIGMA_NM, refine=not args.no_refine)
    warnings.filterwarnings("ignore", message="this model looks at each frame beside")
    print("(a window model warns that it sees a single image as its own neighbours)")
    for k, density in enumerate(args.densities):
        config = SimulationConfig(frame_size=(128, 128), n_frames=args.frames, density_per_um2=density,
                                  photons_mean=2000.0, background_photons=50.0, camera=camera)
        frames, truth = simulate_independent_frames(config, np.random.default_rng(args.seed_base + k))[:2]
        truth = truth.emitters.reset_index(drop=True)
        tables = {"as a stack": predict(frames, camera, options).table,
                  "each alone": pd.concat([predict(frames[t:t + 1], camera, options).table.assign(frame=t)
                                           for t in range(len(frames))], ignore_index=True)}
        errors = {way: matched_errors_nm(table, truth) for way, table in tables.items()}
        both = errors["as a stack"].index.intersection(errors["each alone"].index)
        for way, table in tables.items():
            matched = errors[way]
            jaccard = 100 * len(matched) / (len(table) + len(truth) - len(matched))
            print(f"density {density:g} /µm² {args.frames} frames [{way:>10}] Jaccard {jaccard:6.2f} %  "
                  f"RMSE {rmse(matched.to_numpy()):6.2f} nm  over both ({len(both)}) "
                  f"{rmse(matched.loc[both].to_numpy()):6.2f} nm", flush=True)


if __name__ == "__main__":
    main()
