"""The maximum-likelihood refinement behind the bundled 3-D model (astigmatic joint fits with the
calibration calibrate-psf recovers from simulated beads): network alone against network +
refinement, the same detections.

Per stack: Jaccard (250 nm laterally, 500 nm axially), lateral and axial RMSE over every match,
the z bias, and over isolated emitters (no other true emitter within 1 µm in their frame, at
least 500 nm from the edge) the RMSE over the 3-D Cramér–Rao bound per axis and the z bias; the
spread of (error / stated uncertainty) per axis over matches.

Stacks: --own (default): our astigmatic stacks with the NAIRR-like calibration (benchmarks/
astigmatic_3d.NAIRR_PSF), 64 x 64 px, 100 nm pixels, 3,000 photons over 50 photons/px, sCMOS,
at 0.1 / 0.5 / 1 per µm² (--densities), seeds --seed-base + i (12,200,000+ validation; 12,700,000+
held out).
--nairr: the NAIRR 3DAS LD / MD / HD validation movies (../shared/data/external; validation
only, never tuned on). Calibration: seed 301's simulated beads.

With --against MODEL (a weights file, or "bundled"): both models with the refinement on each
stack, judged as the bundled model is replaced (docs/model.md, "Which model is bundled"): Jaccard,
and the lateral and axial RMSE over the true emitters that **both** models match (a model that
finds more of the hard ones is not charged for them there), with a verdict per stack.

Run: .venv/bin/python benchmarks/refinement_3d.py [--nairr] [--frames N] [--seed-base N] [--densities D ...]
[--model M.safetensors] [--against M.safetensors | bundled]
Prints one row per stack and method (or model); asserts nothing.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import tifffile

from astigmatic_3d import EXTERNAL, NAIRR_CAMERA, NAIRR_PSF, calibration_from_beads
from compare_models import errors_by_truth
from external import FAR_NM, isolated

from napari_var_emitter.evaluate.crlb import crlb_3d_nm
from napari_var_emitter.evaluate.matching import match_frames
from napari_var_emitter.io.camera import Camera
from napari_var_emitter.predict import PredictOptions, predict
from napari_var_emitter.simulate.config import SimulationConfig
from napari_var_emitter.simulate.stack import simulate_stack

AXIAL_TOLERANCE_NM = 500.0


def score(table: pd.DataFrame, truth: pd.DataFrame, camera: Camera, field_nm) -> dict:
    p, t = match_frames(table, truth, FAR_NM, AXIAL_TOLERANCE_NM)
    error = {a: table[f"{a}_nm"].to_numpy()[p] - truth[f"{a}_nm"].to_numpy()[t] for a in "xyz"}
    alone = isolated(truth, field_nm)[t]
    bounds = crlb_3d_nm(truth["photons"].to_numpy()[t], truth["background"].to_numpy()[t],
                        truth["z_nm"].to_numpy()[t], NAIRR_PSF, camera.pixel_size_nm, camera.excess_noise_factor)
    out = {"jaccard": 100 * len(p) / (len(table) + len(truth) - len(p)),
           "lateral_nm": float(np.sqrt(np.mean(error["x"] ** 2 + error["y"] ** 2) / 2)),
           "axial_nm": float(np.sqrt(np.mean(error["z"] ** 2))), "z_bias_nm": float(np.mean(error["z"])),
           "iso_n": int(alone.sum())}
    for a, bound in zip("xyz", bounds):
        out[f"iso_rmse/crlb_{a}"] = float(np.sqrt(np.mean(error[a][alone] ** 2) / np.mean(bound[alone] ** 2)))
    out["iso_z_bias_nm"] = float(np.mean(error["z"][alone]))
    for a in "xyz":
        column = f"uncertainty_{a}_nm" if f"uncertainty_{a}_nm" in table else "uncertainty_nm"
        out[f"pull_sd_{a}"] = float(np.std(error[a] / table[column].to_numpy()[p]))
    if "fitted" in table:
        out["fitted"] = float((table["fitted"] > 0).mean())  # the share of rows a fit replaced or added
    return out


def compare(args, psf) -> None:
    """--model against --against on each stack, the refinement on (the bundling rule's columns)."""
    models = {"model": args.model, "against": None if args.against == "bundled" else args.against}
    for name, frames, truth, camera, field in stacks(args):
        tables = {label: predict(frames, camera, PredictOptions(model=weights, psf=psf)).table
                  for label, weights in models.items()}
        errors = {label: errors_by_truth(table, truth, AXIAL_TOLERANCE_NM) for label, table in tables.items()}
        both = errors["model"].index.intersection(errors["against"].index)
        figures = {}
        for label, table in tables.items():
            on_both = errors[label].loc[both]
            figures[label] = (score(table, truth, camera, field)["jaccard"],
                              float(np.sqrt(np.mean(on_both["x"] ** 2 + on_both["y"] ** 2) / 2)),
                              float(np.sqrt(np.mean(on_both["z"] ** 2))))
            print(f"{name} [{label:>7}] jaccard {figures[label][0]:.3f}  lateral_both_nm {figures[label][1]:.3f}  "
                  f"axial_both_nm {figures[label][2]:.3f}  both {len(both)}", flush=True)
        new, old = figures["model"], figures["against"]
        ahead = new[0] >= old[0] and new[1] <= old[1] and new[2] <= old[2]
        print(f"{name} {'model ahead' if ahead else 'model not ahead'} (Jaccard {new[0] - old[0]:+.2f} points, "
              f"lateral over both {new[1] - old[1]:+.2f} nm, axial over both {new[2] - old[2]:+.2f} nm)", flush=True)


def stacks(args):
    """(name, frames ADU, truth, camera, field (height, width) nm) of the chosen stacks."""
    if args.nairr:
        for density in ("LD", "MD", "HD"):
            folder = EXTERNAL / "nairr" / f"3DAS_{density}"
            frames = tifffile.imread(folder / f"3DAS_{density}_Validate_Frame.tif")[:args.frames]
            csv = pd.read_csv(folder / f"3DAS_{density}_Validate_xyz.csv")
            truth = pd.DataFrame({"frame": csv["Frame"] - 1, "x_nm": csv["x (nm)"], "y_nm": csv["y (nm)"],
                                  "z_nm": csv["z (nm)"], "photons": csv["Intensity (photons)"].astype(float),
                                  "background": 50.0})
            truth = truth[truth["frame"] < len(frames)].reset_index(drop=True)
            field = (frames.shape[1] * NAIRR_CAMERA.pixel_size_nm, frames.shape[2] * NAIRR_CAMERA.pixel_size_nm)
            yield f"NAIRR 3DAS {density}", frames, truth, NAIRR_CAMERA, field
        return
    camera = Camera(pixel_size_nm=100.0, baseline_adu=100.0, e_per_adu=0.5, read_noise_e=1.5)
    for i, density in enumerate(args.densities):
        config = SimulationConfig(frame_size=(64, 64), n_frames=args.frames or 100, density_per_um2=density,
                                  photons_mean=3000.0, background_photons=50.0, psf=NAIRR_PSF, camera=camera)
        frames, truth = simulate_stack(config, np.random.default_rng(args.seed_base + i))
        yield f"ours {density:g}/µm²", frames, truth.emitters, camera, (6400.0, 6400.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nairr", action="store_true", help="the NAIRR 3DAS validation movies instead of ours")
    parser.add_argument("--frames", type=int, help="at most this many frames per stack (ours: 100 by default)")
    parser.add_argument("--seed-base", type=int, default=12_700_000)
    parser.add_argument("--densities", type=float, nargs="+", default=[0.1, 0.5, 1.0], help="ours: emitters/µm²")
    parser.add_argument("--model", help="a 3-D model file (default: the bundled 3-D model)")
    parser.add_argument("--against", help="another 3-D model file, or 'bundled': both judged on the emitters both find")
    args = parser.parse_args()
    psf = calibration_from_beads(NAIRR_PSF, 301)
    if args.against:
        compare(args, psf)
        return
    for name, frames, truth, camera, field in stacks(args):
        for method, refine in (("network", False), ("network + MLE", True)):
            start = time.perf_counter()
            table = predict(frames, camera, PredictOptions(model=args.model, psf=psf, refine=refine)).table
            elapsed = time.perf_counter() - start
            row = "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                            for k, v in score(table, truth, camera, field).items())
            print(f"{name} [{method:>13}] {row}  time {elapsed:.1f} s", flush=True)


if __name__ == "__main__":
    main()
