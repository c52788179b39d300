"""The classical reference localiser: DoG detection + Poisson MLE fit, frame chunk by chunk."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..io.camera import Camera, frames_to_photons
from .detect import detect_candidates
from .mle import fit_spots

_FRAMES_PER_CHUNK = 32


def localize_stack(frames_adu, camera: Camera, sigma_nm: float = 130.0, snr: float = 4.0,
                   roi_size: int = 7) -> pd.DataFrame:
    """Localise every frame of a (T, H, W) ADU stack (numpy or dask).

    Returns the localisation table: frame, x_nm, y_nm, photons, background, sigma_nm,
    uncertainty_nm (sqrt of the mean x/y Cramér–Rao variance, with the EM excess factor).
    """
    sigma_px = sigma_nm / camera.pixel_size_nm
    half = roi_size // 2
    tables = []
    for start in range(0, frames_adu.shape[0], _FRAMES_PER_CHUNK):
        photons = frames_to_photons(np.asarray(frames_adu[start:start + _FRAMES_PER_CHUNK]), camera, start)
        found = detect_candidates(photons, sigma_px, snr)
        if not len(found):
            continue
        _, height, width = photons.shape
        row0 = np.clip(found[:, 1] - half, 0, height - roi_size)
        col0 = np.clip(found[:, 2] - half, 0, width - roi_size)
        offsets = np.arange(roi_size)
        rois = photons[found[:, :1, None], (row0[:, None] + offsets)[:, :, None],
                       (col0[:, None] + offsets)[:, None, :]]
        fit = fit_spots(rois, sigma_px)
        inside = (fit["x_px"] >= 0) & (fit["x_px"] < roi_size) & (fit["y_px"] >= 0) & (fit["y_px"] < roi_size)
        variance = (fit["crlb_x_px"] ** 2 + fit["crlb_y_px"] ** 2) / 2 * camera.excess_noise_factor
        tables.append(pd.DataFrame({
            "frame": found[:, 0] + start,
            "x_nm": (col0 + fit["x_px"]) * camera.pixel_size_nm,
            "y_nm": (row0 + fit["y_px"]) * camera.pixel_size_nm,
            "photons": fit["photons"],
            "background": fit["background"],
            "sigma_nm": sigma_nm,
            "uncertainty_nm": np.sqrt(variance) * camera.pixel_size_nm,
        })[inside])
    columns = ["frame", "x_nm", "y_nm", "photons", "background", "sigma_nm", "uncertainty_nm"]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=columns)
