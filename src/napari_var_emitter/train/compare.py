"""Did fine-tuning help? Two models side by side on frames neither trained nor calibrated on.

Without truth, the figures are what each model reports (detections per frame, median photons,
uncertainty and probability) and one self-consistency check: how well its localisations explain
the frames. Each frame is redrawn from them (pixel-integrated Gaussian PSF of the stack's
estimated sigma, each localisation's photons, the frame's median background) and compared
with the data: mean (data - redrawn)² / redrawn per pixel, about 1 (shot noise) when the
localisations account for every spot and no more; missed spots, phantom detections and wrong
photon counts all raise it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..io.camera import Camera, frames_to_photons
from ..predict.frames import predict_frames
from ..psf import render_spots

HELD_OUT_MAX = 20  # frames kept aside for the comparison
RESIDUAL = "residual"  # mean (data - redrawn)² / redrawn per pixel
CLEAR_CHANGE = 0.05  # relative change of the residual that counts as better or worse


def held_out_start(n_frames: int) -> int:
    """The first of the frames kept aside (the last fifth, at most HELD_OUT_MAX, at least one;
    none for a single frame, which is then both)."""
    if n_frames < 2:
        return 0
    return n_frames - max(1, min(HELD_OUT_MAX, n_frames // 5))


def compare_models(frames_adu, camera: Camera, models: dict, psf_sigma_nm: float | None) -> pd.DataFrame:
    """One column per model (name -> model), one row per figure, on (T, H, W) ADU frames; the
    residual is NaN without a PSF sigma."""
    frames = np.asarray(frames_adu)
    photons = frames_to_photons(frames, camera)
    columns = {}
    for name, model in models.items():
        table = predict_frames(model, frames, camera).table
        columns[name] = {
            "detections/frame": len(table) / len(frames),
            "photons (median)": _median(table, "photons"),
            "uncertainty [nm]": _median(table, "uncertainty_nm"),
            "probability": _median(table, "probability"),
            RESIDUAL: (redraw_residual(photons, table, camera.pixel_size_nm, psf_sigma_nm)
                       if psf_sigma_nm else float("nan")),
        }
    return pd.DataFrame(columns)


def redraw_residual(photons_TYX: np.ndarray, table: pd.DataFrame, pixel_size_nm: float, sigma_nm: float) -> float:
    """Mean over pixels of (data - redrawn)² / redrawn (module docstring)."""
    n, height, width = photons_TYX.shape
    background = np.median(photons_TYX.reshape(n, -1), axis=1)[:, None, None]
    spots = np.zeros_like(photons_TYX)
    if len(table):
        sigma_px = np.full(len(table), sigma_nm / pixel_size_nm)
        spots = render_spots((n, height, width), table["frame"].to_numpy(), table["x_nm"].to_numpy() / pixel_size_nm,
                             table["y_nm"].to_numpy() / pixel_size_nm, sigma_px, sigma_px, table["photons"].to_numpy())
    redrawn = np.maximum(spots + background, 1.0)
    return float(np.mean((photons_TYX - redrawn) ** 2 / redrawn))


def _median(table: pd.DataFrame, column: str) -> float:
    return float(table[column].median()) if column in table and len(table) else float("nan")


def verdict(comparison: pd.DataFrame) -> str:
    """One sentence on the residual of "before" vs "after" (which explains the frames better)."""
    before, after = comparison.loc[RESIDUAL, "before"], comparison.loc[RESIDUAL, "after"]
    if not np.isfinite(before) or not np.isfinite(after):
        return "No residual (the PSF width could not be estimated): compare the detections and photons."
    change = (after - before) / before
    if change < -CLEAR_CHANGE:
        return f"Better: residual {before:.2f} → {after:.2f} (1 = nothing left but shot noise). Use it."
    if change > CLEAR_CHANGE:
        return (f"Worse: residual {before:.2f} → {after:.2f} (1 = nothing left but shot noise). Keep the model "
                "you started from, or fine-tune longer or on trusted positions.")
    return f"No clear change: residual {before:.2f} → {after:.2f} (within 5 %). Either model will do."
