"""Picasso's test movie (../shared/data/external/picasso-testdata-sim; validation only: never
trained, tuned or thresholded on): is every spot that Picasso localises found, within 30 nm of
Picasso's position (issue 30's bar)? 100 frames of 32x32 px, 160 nm pixels, PSF sigma 0.82 px,
DNA-PAINT spots of 2,600-21,000 photons; Picasso's own MLE localisations of its first 100 frames
(testdata_locs.hdf5; their background of about 250 per pixel equals the movie's, so the movie is
read as photons: baseline 0, 1 e-/ADU).

Per model: how many of Picasso's localisations have one of ours within 30 nm and within 250 nm
in their frame, the distances, the photons of those missed, and our detections with none of
Picasso's within 250 nm (Picasso's 30 are the bright spots its net-gradient threshold of 5,000
keeps, not every emitter of the simulation, so those are not counted as false).

Run: .venv/bin/python benchmarks/picasso_movie.py [--model bundled|PATH ...] [--no-refine]
Prints one line per model; asserts nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from external import nearest_nm

from napari_var_emitter.io.camera import Camera
from napari_var_emitter.io.picasso_h5 import read_picasso_h5
from napari_var_emitter.io.stack import open_stack
from napari_var_emitter.predict import PredictOptions, predict

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "external" / "picasso-testdata-sim"
WITHIN_NM, NEAR_NM = 30.0, 250.0
CAMERA = Camera(pixel_size_nm=160.0, baseline_adu=0.0, e_per_adu=1.0, read_noise_e=1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", default=["bundled"], help="weights, or 'bundled' (the default)")
    parser.add_argument("--no-refine", action="store_true", help="the network's positions, without the refinement")
    args = parser.parse_args()
    stack = open_stack(DATA / "testdata.tif")
    frames = np.asarray(stack.frames)
    picasso = read_picasso_h5(DATA / "testdata_locs.hdf5", CAMERA.pixel_size_nm)
    picasso = picasso[picasso["frame"] < len(frames)]
    print(f"{len(picasso)} Picasso localisations in {len(frames)} frames, photons "
          f"{picasso['photons'].min():,.0f}-{picasso['photons'].max():,.0f}")
    for model in args.model:
        weights = None if model == "bundled" else model
        table = predict(frames, CAMERA, PredictOptions(model=weights, refine=not args.no_refine)).table
        to_ours, to_theirs = nearest_nm(picasso, table), nearest_nm(table, picasso)
        found, near = to_ours <= WITHIN_NM, to_ours <= NEAR_NM
        missed = picasso.loc[~found, "photons"].round().astype(int).tolist()
        print(f"{model}{' (network only)' if args.no_refine else ''}: "
              f"{found.sum()} of {len(picasso)} within {WITHIN_NM:g} nm, {near.sum()} within {NEAR_NM:g} nm; "
              f"distance median {np.median(to_ours[near]):.1f} nm, largest {to_ours[near].max():.1f} nm; "
              f"missed (photons): {missed}; {len(table)} detections, {(to_theirs > NEAR_NM).sum()} with no "
              f"Picasso localisation within {NEAR_NM:g} nm", flush=True)


if __name__ == "__main__":
    main()
