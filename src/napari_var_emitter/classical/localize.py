"""The classical reference localiser: DoG detection + Poisson MLE fit, frame chunk by chunk;
in 3-D (x, y, z) with an astigmatic PSF calibration."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..fit.joint import misfit_scale
from ..fit.mle import fit_spots, fit_spots_3d
from ..io.camera import Camera, frames_to_photons
from ..psf import PSF
from .detect import detect_candidates

_FRAMES_PER_CHUNK = 32
ROI_SIGMAS = 3.0  # a 3-D fit's ROI reaches this many times the round PSF's sigma (at z = 0)


def localize_stack(frames_adu, camera: Camera, sigma_nm: float = 130.0, snr: float = 4.0,
                   roi_size: int = 7, psf: PSF | None = None, first_frame: int = 0) -> pd.DataFrame:
    """Localise every frame of a (T, H, W) ADU stack (numpy or dask) whose frame 0 is frame
    `first_frame` of its movie.

    Returns the localisation table: frame, x_nm, y_nm, photons, background, sigma_nm,
    uncertainty_nm (sqrt of the mean x/y Cramér–Rao variance, with the EM excess factor). With an
    astigmatic `psf` (a calibration), sigma_nm and roi_size come from it, and z_nm and
    uncertainty_z_nm are added.
    """
    px = camera.pixel_size_nm
    if psf is not None:
        sigma_nm = psf.sigma_nm
        roi_size = 2 * int(np.ceil(ROI_SIGMAS * sigma_nm / px)) + 1
    sigma_px = sigma_nm / px
    half = roi_size // 2
    tables = []
    for start in range(0, frames_adu.shape[0], _FRAMES_PER_CHUNK):
        photons = frames_to_photons(np.asarray(frames_adu[start:start + _FRAMES_PER_CHUNK]), camera,
                                    first_frame + start)
        found = detect_candidates(photons, sigma_px, snr)
        if not len(found):
            continue
        _, height, width = photons.shape
        row0 = np.clip(found[:, 1] - half, 0, height - roi_size)
        col0 = np.clip(found[:, 2] - half, 0, width - roi_size)
        offsets = np.arange(roi_size)
        rois = photons[found[:, :1, None], (row0[:, None] + offsets)[:, :, None],
                       (col0[:, None] + offsets)[:, None, :]]
        fit = fit_spots(rois, sigma_px) if psf is None else fit_spots_3d(rois, psf, px)
        inside = (fit["x_px"] >= 0) & (fit["x_px"] < roi_size) & (fit["y_px"] >= 0) & (fit["y_px"] < roi_size)
        # the bounds, widened where the spot leaves light unexplained (a neighbour in its ROI): the refinement's rule
        # (the fit is plain Poisson: EM gain's excess noise alone puts the deviance at its factor)
        widened = misfit_scale(fit["misfit"] / camera.excess_noise_factor)
        variance = (fit["crlb_x_px"] ** 2 + fit["crlb_y_px"] ** 2) / 2 * camera.excess_noise_factor * widened ** 2
        table = pd.DataFrame({
            "frame": found[:, 0] + first_frame + start,
            "x_nm": (col0 + fit["x_px"]) * px,
            "y_nm": (row0 + fit["y_px"]) * px,
            "photons": fit["photons"],
            "background": fit["background"],
            "sigma_nm": sigma_nm,
            "uncertainty_nm": np.sqrt(variance) * px,
        })
        if psf is not None:
            table.insert(3, "z_nm", fit["z_nm"])
            table["uncertainty_z_nm"] = fit["crlb_z_nm"] * np.sqrt(camera.excess_noise_factor) * widened
            inside &= _most_likely_of_neighbours(table, fit["loglik"], psf.sigma_nm)
        tables.append(table[inside])
    columns = ["frame", "x_nm", "y_nm", *(["z_nm"] if psf is not None else []), "photons", "background",
               "sigma_nm", "uncertainty_nm", *(["uncertainty_z_nm"] if psf is not None else [])]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=columns)


def _most_likely_of_neighbours(table: pd.DataFrame, loglik: np.ndarray, radius_nm: float) -> np.ndarray:
    """Mask keeping, of fits in one frame closer than `radius_nm` (one elongated spot detected
    twice, converged to the same emitter), only the most likely."""
    keep = np.ones(len(table), bool)
    frame, x, y = (table[c].to_numpy() for c in ("frame", "x_nm", "y_nm"))
    for i in np.argsort(-loglik):
        if keep[i]:
            near = (frame == frame[i]) & (np.hypot(x - x[i], y - y[i]) < radius_nm)
            near[i] = False
            keep &= ~near
    return keep
