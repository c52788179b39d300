"""Beads in a z-stack: found in the stack's sum, then fitted slice by slice with free widths."""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.ndimage import gaussian_filter, maximum_filter

from ..fit.mle import fit_elliptical_spots
from ..errors import InputError
from ..io.camera import Camera, frames_to_photons

ROI_NM = 2400.0  # side of the square fitted around each bead (defocused beads are wide)
MIN_BEAD_SNR = 20.0  # peak of the smoothed sum over its shot noise
MIN_SLICE_PHOTONS = 200.0  # a slice's fit with fewer photons (bead lost in defocus) is left out
MAX_SHIFT_PX = 2.0  # a slice's fit further than this from the bead is left out


@dataclasses.dataclass
class BeadFits:
    """Per-bead, per-slice widths (nm) of K beads in S slices; NaN where a slice's fit was left out."""

    x_nm: np.ndarray  # (K,) bead position
    y_nm: np.ndarray
    sigma_x_nm_KS: np.ndarray
    sigma_y_nm_KS: np.ndarray
    photons_KS: np.ndarray
    left_out: dict[str, int]  # beads not used, by reason


def fit_beads(frames_adu: np.ndarray, camera: Camera, roi_nm: float = ROI_NM) -> BeadFits:
    """Find beads in an (S, H, W) ADU z-stack and fit each slice of each bead.

    Beads too close to the edge or to another bead (ROIs overlapping) or saturated (a flat top at
    the stack's largest value) are left out; InputError when no bead is left."""
    frames_adu = np.asarray(frames_adu)
    if frames_adu.ndim != 3 or len(frames_adu) < 7:
        raise InputError(f"a bead z-stack needs (slices, y, x) with at least 7 slices, got shape {frames_adu.shape}")
    photons = frames_to_photons(frames_adu, camera).astype(np.float64)
    px = camera.pixel_size_nm
    roi = 2 * int(round(roi_nm / px / 2)) + 1
    peaks = _bright_peaks(photons.sum(axis=0), roi)
    if not len(peaks):
        raise InputError("no beads found: the sum over the slices has no spot 20 times above its noise; "
                         "is this a bead z-stack, with the camera set up (baseline, e⁻/ADU)?")
    half = roi // 2
    height, width = photons.shape[1:]
    near_edge = (peaks[:, 0] < half) | (peaks[:, 1] < half) | (peaks[:, 0] >= height - half) | \
        (peaks[:, 1] >= width - half)
    distance = np.hypot(*(peaks[:, None, :] - peaks[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(distance, np.inf)
    crowded = distance.min(axis=1) < roi
    top = frames_adu.max()
    saturated = np.array([_is_saturated(frames_adu, top, r, c, half) for r, c in peaks])
    keep = ~near_edge & ~crowded & ~saturated
    left_out = {"near the edge": int(near_edge.sum()),
                "within one ROI of another bead": int((crowded & ~near_edge).sum()),
                "saturated": int((saturated & ~near_edge & ~crowded).sum())}
    if not keep.any():
        reasons = ", ".join(f"{n} {why}" for why, n in left_out.items() if n)
        raise InputError(f"no usable beads: {len(peaks)} found, all left out ({reasons}); "
                         + ("lower the exposure or laser power so the beads stay below the camera's maximum"
                            if left_out["saturated"] else "use a field with isolated beads away from the edge (a bead "
                            "z-stack: fixed beads imaged slice by slice through focus, not a movie of blinking "
                            "molecules)"))
    peaks = peaks[keep]
    offsets = np.arange(roi) - half
    rows, cols = peaks[:, 0, None] + offsets, peaks[:, 1, None] + offsets  # (K, R)
    rois = photons[:, rows[:, :, None], cols[:, None, :]]  # (S, K, R, R)
    n_slices, n_beads = rois.shape[:2]
    fit = fit_elliptical_spots(rois.reshape(-1, roi, roi))
    shape = (n_slices, n_beads)
    x_px = fit["x_px"].reshape(shape) + cols[:, 0]
    y_px = fit["y_px"].reshape(shape) + rows[:, 0]
    bead_x, bead_y = np.median(x_px, axis=0), np.median(y_px, axis=0)
    good = ((fit["photons"].reshape(shape) >= MIN_SLICE_PHOTONS)
            & (np.hypot(x_px - bead_x, y_px - bead_y) <= MAX_SHIFT_PX)
            & (fit["sigma_x_px"].reshape(shape) < roi / 3 - 1e-6) & (fit["sigma_y_px"].reshape(shape) < roi / 3 - 1e-6))

    def per_bead(values):
        return np.where(good, values.reshape(shape), np.nan).T

    return BeadFits(x_nm=bead_x * px, y_nm=bead_y * px, sigma_x_nm_KS=per_bead(fit["sigma_x_px"]) * px,
                    sigma_y_nm_KS=per_bead(fit["sigma_y_px"]) * px, photons_KS=per_bead(fit["photons"]),
                    left_out=left_out)


def _bright_peaks(total_HW: np.ndarray, roi: int) -> np.ndarray:
    """(K, 2) row, col of local maxima (within one ROI) of the smoothed sum that stand
    MIN_BEAD_SNR shot-noise standard deviations above its median."""
    smooth = gaussian_filter(total_HW, 2.0)
    level = np.median(smooth)
    noise = np.sqrt(max(level, 1.0) / (4 * np.pi * 2.0**2))  # shot noise of a 2-px Gaussian mean
    peaks = (smooth == maximum_filter(smooth, size=roi)) & (smooth - level > MIN_BEAD_SNR * noise)
    return np.argwhere(peaks)


def _is_saturated(frames_adu: np.ndarray, top, row: int, col: int, half: int) -> bool:
    """Whether a bead's ROI reaches the stack's largest value `top` in two or more pixels of one
    slice (a clipped, flat top), or at all when that value is the top of the integer type."""
    window = frames_adu[:, max(row - half, 0):row + half + 1, max(col - half, 0):col + half + 1]
    at_top = (window == top).reshape(len(window), -1).sum(axis=1)
    type_max = np.iinfo(frames_adu.dtype).max if np.issubdtype(frames_adu.dtype, np.integer) else np.inf
    return bool(at_top.max() >= 2 or (top >= type_max and at_top.max() >= 1))
