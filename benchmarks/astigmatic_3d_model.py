"""A 3-D model (train --psf, or conditioned on the calibration: configs/gpu_3d.json) on our own
astigmatic grid, beside the classical 3-D fit: the grid of benchmarks/astigmatic_3d.py (three
calibrations x densities 0.1 / 0.5 / 2 per µm², 100 frames of 64 x 64 px each, seeds 311-319),
each calibration recovered by calibrate_psf from its own simulated beads (seeds 411, 414, 417) and
given to both. Emitters dimmer than 1,000 photons are left out of the scores, as there.
Then the bias of z against true z per 100 nm bin (200 frames, 0.1 /µm², seed 77) through the
calibration the model was trained on (its family's middle one for a conditioned model).
With --nairr, also the NAIRR 3DAS validation movies
(../shared/data/external; validation only, never trained or tuned on) with the NAIRR calibration
recovered from seed 301's simulated beads.

Run: .venv/bin/python benchmarks/astigmatic_3d_model.py --model RUN/model.safetensors [--threshold T]
     [--frames N] [--nairr] [--nairr-frames N]
(prints tables; asserts nothing)
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from astigmatic_3d import AXES, BEAD_CAMERA, NAIRR_CAMERA, NAIRR_PSF, calibration_from_beads, grid_cells, nairr_rows
from napari_var_emitter.classical.localize import localize_stack
from napari_var_emitter.evaluate.matching import match_frames
from napari_var_emitter.evaluate.metrics import evaluate
from napari_var_emitter.model.checkpoint import load_model
from napari_var_emitter.model.config import DEFAULT_THRESHOLD
from napari_var_emitter.predict import PredictOptions, predict_frames
from napari_var_emitter.predict.envelope import Envelope
from napari_var_emitter.simulate.config import SimulationConfig
from napari_var_emitter.simulate.stack import simulate_stack
from napari_var_emitter.train.config import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a 3-D model's weights (.safetensors)")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help="detection threshold (chosen by choose_3d_threshold.py)")
    parser.add_argument("--frames", type=int, default=100, help="frames per grid cell")
    parser.add_argument("--nairr", action="store_true", help="also the NAIRR 3DAS sets")
    parser.add_argument("--nairr-frames", type=int, help="at most this many frames per NAIRR set")
    args = parser.parse_args()
    model, card = load_model(args.model)
    if not model.config.with_z:
        raise SystemExit(f"{args.model} is a 2-D model")
    envelope = Envelope.from_card(card)
    columns = " ".join(f"{a:>17}" for a in AXES)
    print(f"{'calibration':<13} {'/µm²':>5} {'method':<9} {columns} {'frames/s':>9}")
    for name, density, psf, frames, truth in grid_cells(args.frames):
        if density == 0.1:
            for message in envelope.psf_warnings(psf) if envelope else []:
                print(f"warning ({name}): {message}")
        options = PredictOptions(psf=psf, threshold=args.threshold)
        for method, run in (("model", lambda: predict_frames(model, frames, BEAD_CAMERA, options).table),
                            ("classical", lambda: localize_stack(frames, BEAD_CAMERA, psf=psf))):
            print(f"{name:<13} {density:5.1f} {method:<9} " + score_row(run, frames, truth), flush=True)
    z_bias_rows(model, card)
    if args.nairr:
        psf = calibration_from_beads(NAIRR_PSF, 301)
        for message in envelope.input_warnings(NAIRR_CAMERA, psf) if envelope else []:
            print(f"warning (NAIRR): {message}")
        options = PredictOptions(psf=psf, threshold=args.threshold)
        nairr_rows(lambda frames: predict_frames(model, frames, NAIRR_CAMERA, options).table,
                   f"3-D model ({args.model}, threshold {args.threshold:g})", args.nairr_frames)


def score_row(localise, frames, truth) -> str:
    """`localise()`'s table scored on AXES (emitters of 1,000 photons or more), and frames/s."""
    started = time.perf_counter()
    table = localise()
    rate = len(frames) / (time.perf_counter() - started)
    report = evaluate(table, truth, min_photons=1000)
    return " ".join(f"{report.get(a, np.nan):17.2f}" for a in AXES) + f" {rate:9.1f}"


def z_bias_rows(model, card: dict) -> None:
    """z bias by depth through the calibration the model was trained on (a family's middle one)."""
    simulation = TrainConfig.from_dict(card["train_config"]).simulation
    family = simulation.psf_family
    psf = family.middle() if family is not None else simulation.psf_calibration
    print_z_bias(model, dataclasses.replace(psf, z_range_nm=(-500.0, 500.0)),
                 "family's middle calibration" if family is not None else "its calibration")


def print_z_bias(model, psf, label: str, threshold: float = DEFAULT_THRESHOLD) -> None:
    """Mean and spread of (z - true z) of matched localisations, per 100 nm bin of true z
    (200 frames, 0.1 /µm², emitters at z in psf.z_range_nm, seed 77)."""
    config = SimulationConfig(frame_size=(64, 64), n_frames=200, density_per_um2=0.1, photons_mean=3000.0,
                              background_photons=30.0, psf=psf, camera=BEAD_CAMERA)
    frames, truth = simulate_stack(config, np.random.default_rng(77))
    table = predict_frames(model, frames, BEAD_CAMERA, PredictOptions(psf=psf, threshold=threshold)).table
    found, true = match_frames(table, truth.emitters, 250.0, 500.0)
    true_z = truth.emitters["z_nm"].to_numpy()[true]
    error = table["z_nm"].to_numpy()[found] - true_z
    print(f"\n## z - true z by true z ({label}, 0.1 /µm², {len(found)} matches)")
    for low in range(-500, 500, 100):
        inside = (true_z >= low) & (true_z < low + 100)
        print(f"z {low:+5d} to {low + 100:+5d} nm: {inside.sum():4d} matches, bias {error[inside].mean():+7.1f} nm, "
              f"SD {error[inside].std():6.1f} nm")


if __name__ == "__main__":
    main()
