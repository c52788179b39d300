"""Candidate spots: local maxima of a difference-of-Gaussians filtered frame above an SNR."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter, maximum_filter


def detect_candidates(photons: np.ndarray, sigma_px: float, snr: float) -> np.ndarray:
    """(K, 3) integer (frame, row, col) of local maxima in (T, H, W) photon frames.

    The DoG response (sigma and 2.5 sigma) must exceed `snr` times its shot-noise standard
    deviation under the local background (Gaussian filter of 5 sigma).
    """
    found = []
    kernel_power = _dog_kernel_power(sigma_px)
    for t, frame in enumerate(photons):
        smooth = gaussian_filter(frame, sigma_px)
        response = smooth - gaussian_filter(frame, 2.5 * sigma_px)
        noise = np.sqrt(np.maximum(gaussian_filter(frame, 5 * sigma_px), 1.0) * kernel_power)
        peaks = (response == maximum_filter(response, size=3)) & (response > snr * noise)
        rows, cols = np.nonzero(peaks)
        found.append(np.column_stack([np.full(rows.size, t), rows, cols]))
    return np.concatenate(found) if found else np.empty((0, 3), np.int64)


def _dog_kernel_power(sigma_px: float) -> float:
    """Sum of squared weights of the DoG kernel (variance gain for white noise)."""
    impulse = np.zeros((65, 65))
    impulse[32, 32] = 1.0
    kernel = gaussian_filter(impulse, sigma_px) - gaussian_filter(impulse, 2.5 * sigma_px)
    return float((kernel**2).sum())
