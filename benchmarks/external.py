"""The model on stacks that other groups simulated (../shared/data/external; validation only:
never trained, tuned or thresholded on). Each set's camera, PSF and coordinate convention is
written once, in SETS below, from the set's README.

Per set and method: Jaccard, lateral RMSE, RMSE / CRLB, efficiency, bias x / y, the
detections farther than 250 nm from every true emitter of their frame ("far"), frames/s; for
the model with the refinement (the default) and without it (network only), also RMSE / CRLB of
the isolated emitters (no other true emitter within 1 µm in their frame, at least 500 nm from
the edge; sets that state photons and background) and the spread of (error / stated
uncertainty) per axis over every match (1 when the uncertainties hold).
Our classical reference always runs beside the model; SMAPpy and Picasso too where they are
installed (`make bench`'s environment, the [bench] extra).

Run: .venv/bin/python benchmarks/external.py [--model PATH] [--sets NAME ...] [--frames N]
     [--json OUT.json]
Prints one row per set and method; asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from scipy.spatial import cKDTree

from napari_var_emitter.classical.localize import localize_stack
from napari_var_emitter.fit.mle import fit_spots
from napari_var_emitter.evaluate.crlb import crlb_nm
from napari_var_emitter.evaluate.matching import match_frames
from napari_var_emitter.evaluate.metrics import evaluate
from napari_var_emitter.io.camera import Camera, frames_to_photons
from napari_var_emitter.io.emitters_h5 import GroundTruth
from napari_var_emitter.predict import PredictOptions, predict
from napari_var_emitter.predict.model_cache import cached_model
from napari_var_emitter.psf import PSF

EXTERNAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "external"
FAR_NM = 250.0
FIT_BOX_PX = 7
ISOLATION_NM = 1000.0
EDGE_NM = 500.0


@dataclasses.dataclass(frozen=True)
class ExternalSet:
    """stack: TIFF (T, H, W) ADU; truth: CSV; read_truth: CSV -> frame (0-based), x_nm, y_nm (pixel
    (0, 0) covering [0, px)), photons, background (photons/px; NaN where the set does not state
    them: then both are estimated once from the frames, see estimated_photons)."""

    name: str
    stack: str
    truth: str
    camera: Camera
    psf_sigma_nm: float
    read_truth: Callable[[pd.DataFrame], pd.DataFrame]
    note: str


def _nairr(csv: pd.DataFrame) -> pd.DataFrame:
    """Frame 1-based; x (nm), y (nm) already edge-origin; Intensity = photons per frame. The
    background for the bound is 500 photons/px of Poisson noise plus the Gaussian noise's
    variance of 300 photons^2, which the bound counts like background."""
    return pd.DataFrame({"frame": csv["Frame"] - 1, "x_nm": csv["x (nm)"], "y_nm": csv["y (nm)"],
                         "photons": csv["Intensity (photons)"].astype(float), "background": 800.0,
                         "id": csv["Emitter"]})


def _storm_analysis(csv: pd.DataFrame) -> pd.DataFrame:
    """frame_1based; x_nm_edge, y_nm_edge in our convention; photons and background not stated."""
    return pd.DataFrame({"frame": csv["frame_1based"] - 1, "x_nm": csv["x_nm_edge"], "y_nm": csv["y_nm_edge"],
                         "photons": np.nan, "background": np.nan, "id": np.arange(len(csv))})


NAIRR_CAMERA = Camera(pixel_size_nm=100.0, baseline_adu=500.0, e_per_adu=1.0, read_noise_e=float(np.sqrt(300.0)))
STORM_CAMERA = Camera(pixel_size_nm=160.0, baseline_adu=100.0, e_per_adu=1.0, read_noise_e=0.0)
SETS = [
    *(ExternalSet(f"nairr_2d_{d.lower()}", f"nairr/2DGauss_{d}/2DGauss_{d}_Validate_Frame.tif",
                  f"nairr/2DGauss_{d}/2DGauss_{d}_Validate_xy.csv", NAIRR_CAMERA, 108.8, _nairr,
                  f"NAIRR 2D Gaussian {d}: 3,000 photons, background 500 photons/px + Gaussian noise")
      for d in ("LD", "MD", "HD")),
    *(ExternalSet(f"storm_analysis_{n}", f"storm-analysis-sim/{n}.tif", f"storm-analysis-sim/{n}_groundtruth.csv",
                  STORM_CAMERA, 160.0, _storm_analysis, f"storm-analysis {n}: 160 nm pixels, sigma ~1 px")
      for n in ("test", "test_300x200", "test_low_snr", "test_l1h")),
]


def estimated_photons(photons_fhw: np.ndarray, truth: pd.DataFrame, set_: ExternalSet) -> tuple[float, float]:
    """Median photons and background (photons/px) of Poisson MLE fits in 7x7 boxes around the
    true positions of emitters with no other within 4 px, with the set's PSF sigma: the
    bound's inputs where a set does not state them."""
    px = set_.camera.pixel_size_nm
    half = FIT_BOX_PX // 2
    _, height, width = photons_fhw.shape
    rois = []
    for frame, rows in truth.groupby("frame"):
        xy = rows[["x_nm", "y_nm"]].to_numpy() / px
        alone = cKDTree(xy).query(xy, k=2)[0][:, 1] > 4 if len(xy) > 1 else np.ones(len(xy), bool)
        for x, y in xy[alone]:
            r, c = int(y), int(x)
            if half <= r < height - half and half <= c < width - half:
                rois.append(photons_fhw[frame, r - half:r + half + 1, c - half:c + half + 1])
    if not rois:
        return float("nan"), float("nan")
    fits = fit_spots(np.asarray(rois), set_.psf_sigma_nm / px)
    return float(np.median(fits["photons"])), float(np.median(fits["background"]))


def nearest_nm(points: pd.DataFrame, others: pd.DataFrame) -> np.ndarray:
    """(len(points),) each point's distance (nm) to the nearest of `others` in its frame (inf: none
    there); both tables with frame, x_nm, y_nm."""
    distance = np.full(len(points), np.inf)
    frames = points["frame"].to_numpy()
    for frame in np.unique(frames):
        xy = others.loc[others["frame"] == frame, ["x_nm", "y_nm"]].to_numpy()
        if len(xy):
            rows = frames == frame
            distance[rows] = cKDTree(xy).query(points.loc[rows, ["x_nm", "y_nm"]].to_numpy())[0]
    return distance


def far_detections(table: pd.DataFrame, truth: pd.DataFrame) -> int:
    """Detections farther than FAR_NM from every true emitter of their frame."""
    return int((nearest_nm(table, truth) > FAR_NM).sum())


def isolated(truth: pd.DataFrame, field_nm: tuple[float, float]) -> np.ndarray:
    """(N,) the true emitters with no other within ISOLATION_NM in their frame and at least
    EDGE_NM from the edge of a field of (height, width) nm."""
    keep = np.zeros(len(truth), bool)
    x, y = truth["x_nm"].to_numpy(), truth["y_nm"].to_numpy()
    for rows in truth.groupby("frame").indices.values():
        xy = np.column_stack([x[rows], y[rows]])
        alone = np.array([len(n) == 1 for n in cKDTree(xy).query_ball_point(xy, ISOLATION_NM)])
        keep[rows] = alone & (xy.min(1) > EDGE_NM) & (y[rows] < field_nm[0] - EDGE_NM) & (x[rows] < field_nm[1] - EDGE_NM)
    return keep


def precision_figures(table: pd.DataFrame, truth: pd.DataFrame, camera: Camera, sigma_nm: float,
                      field_nm: tuple[float, float]) -> dict[str, float]:
    """RMSE / CRLB of the isolated true emitters (iso_rmse_over_crlb, iso_n), and the sd of
    error / stated uncertainty per axis over every match (pull_sd_x, pull_sd_y)."""
    p, t = match_frames(table, truth, FAR_NM)
    dx = table["x_nm"].to_numpy()[p] - truth["x_nm"].to_numpy()[t]
    dy = table["y_nm"].to_numpy()[p] - truth["y_nm"].to_numpy()[t]
    alone = isolated(truth, field_nm)[t]
    bound = crlb_nm(truth["photons"].to_numpy()[t], truth["background"].to_numpy()[t], sigma_nm, camera.pixel_size_nm,
                    camera.excess_noise_factor)
    ux = table["uncertainty_x_nm" if "uncertainty_x_nm" in table else "uncertainty_nm"].to_numpy()[p]
    uy = table["uncertainty_y_nm" if "uncertainty_y_nm" in table else "uncertainty_nm"].to_numpy()[p]
    iso = (float(np.sqrt(np.mean(dx[alone] ** 2 + dy[alone] ** 2) / np.mean(2 * bound[alone] ** 2)))
           if alone.any() else float("nan"))
    return {"iso_n": int(alone.sum()), "iso_rmse_over_crlb": iso,
            "pull_sd_x": float(np.std(dx / ux)), "pull_sd_y": float(np.std(dy / uy))}


REFINED = "VAR + MLE (ours)"
NETWORK_ONLY = "VAR network only"


def methods(model_path: str | None) -> dict[str, Callable]:
    var_prior = cached_model(model_path)[0].config.var_prior
    refined, network = (REFINED, NETWORK_ONLY) if var_prior else ("no-VAR + MLE", "no-VAR network only")
    runs = {refined: lambda frames, camera, sigma: predict(frames, camera, PredictOptions(model=model_path)).table,
            network: lambda frames, camera, sigma: predict(frames, camera, PredictOptions(model=model_path,
                                                                                          refine=False)).table,
            "classical (ours)": lambda frames, camera, sigma: localize_stack(frames, camera, sigma)}
    if importlib.util.find_spec("smappy") and importlib.util.find_spec("picasso"):
        sys.path.insert(0, str(Path(__file__).parent))
        from peer_fitters import picasso_localize, smappy_localize

        runs["SMAPpy"] = smappy_localize
        runs["Picasso"] = picasso_localize
    return runs


def score_set(set_: ExternalSet, runs: dict, max_frames: int | None) -> dict:
    frames = tifffile.imread(EXTERNAL / set_.stack)[:max_frames]
    truth = set_.read_truth(pd.read_csv(EXTERNAL / set_.truth))
    truth = truth[truth["frame"] < len(frames)].reset_index(drop=True)
    estimated = truth["photons"].isna().all()
    if estimated:
        photons, background = estimated_photons(frames_to_photons(frames, set_.camera), truth, set_)
        truth = truth.assign(photons=photons, background=background)
    truth = truth.assign(z_nm=0.0)
    ground = GroundTruth(truth, set_.camera, PSF(sigma_nm=set_.psf_sigma_nm).to_dict(), frames.shape[1:], len(frames))
    rows = {"frames": len(frames), "emitters": len(truth), "crlb_inputs": "estimated" if estimated else "stated",
            "photons": float(truth["photons"].median()), "background": float(truth["background"].median())}
    for name, run in runs.items():
        started = time.perf_counter()
        table = run(frames, set_.camera, set_.psf_sigma_nm)
        elapsed = time.perf_counter() - started
        report = evaluate(table, ground)
        rows[name] = {k: report[k] for k in ("jaccard", "rmse_lateral_nm", "rmse_over_crlb", "crlb_lateral_nm",
                                             "efficiency_lateral", "bias_x_nm", "bias_y_nm", "n_pred", "tp")}
        rows[name].update(far=far_detections(table, truth), frames_per_s=len(frames) / elapsed)
        if "uncertainty_nm" in table and not estimated and name != "classical (ours)":
            field_nm = tuple(n * set_.camera.pixel_size_nm for n in frames.shape[1:])
            rows[name].update(precision_figures(table, truth, set_.camera, set_.psf_sigma_nm, field_nm))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="weights (default: bundled)")
    parser.add_argument("--sets", nargs="+", choices=[s.name for s in SETS], default=[s.name for s in SETS])
    parser.add_argument("--frames", type=int, help="at most this many frames per set")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if not EXTERNAL.is_dir():
        raise SystemExit(f"{EXTERNAL} is missing: the external sets live in ../shared/data/external")
    runs = methods(args.model)
    print(f"{'set':<28} {'method':<17} {'Jaccard':>7} {'RMSE nm':>8} {'/CRLB':>6} {'eff.':>6} "
          f"{'bias x':>7} {'bias y':>7} {'far':>9} {'frames/s':>9}")
    results = {}
    for set_ in (s for s in SETS if s.name in args.sets):
        results[set_.name] = rows = score_set(set_, runs, args.frames)
        print(f"# {set_.note}; {rows['frames']} frames, {rows['emitters']} emitters; CRLB from {rows['crlb_inputs']} "
              f"photons {rows['photons']:.0f}, background {rows['background']:.0f} photons/px", flush=True)
        for name in runs:
            r = rows[name]
            print(f"{set_.name:<28} {name:<17} {r['jaccard']:7.2f} {r['rmse_lateral_nm']:8.2f} "
                  f"{r['rmse_over_crlb']:6.2f} {r['efficiency_lateral']:6.2f} {r['bias_x_nm']:7.2f} "
                  f"{r['bias_y_nm']:7.2f} {r['far']:>4}/{r['n_pred']:<4} {r['frames_per_s']:9.1f}"
                  + (f"   isolated ({r['iso_n']}) RMSE/CRLB {r['iso_rmse_over_crlb']:.2f}, error/uncertainty sd "
                     f"x {r['pull_sd_x']:.2f} y {r['pull_sd_y']:.2f}" if "iso_n" in r else ""), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
