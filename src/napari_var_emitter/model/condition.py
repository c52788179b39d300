"""A PSF calibration as a 3-D model's condition: the astigmatic defocus curves of both axes as a
vector of CALIBRATION_FEATURES numbers of order one."""

from __future__ import annotations

import numpy as np

from ..psf import PSF

CALIBRATION_FEATURES = 10


def calibration_vector(psf: PSF) -> np.ndarray:
    """(CALIBRATION_FEATURES,) float32: per axis x then y, sigma0 / 100 nm - 1.3, focus / 300 nm,
    depth / 300 nm - 1, and the cubic and quartic coefficients."""
    features = []
    for curve in (psf.curve_x, psf.curve_y):
        features += [curve.sigma0_nm / 100.0 - 1.3, curve.focus_nm / 300.0, curve.depth_nm / 300.0 - 1.0,
                     curve.cubic, curve.quartic]
    return np.asarray(features, np.float32)
