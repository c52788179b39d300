"""Cramér–Rao bound of a Gaussian spot fitted by maximum likelihood (Mortensen et al. 2010).

Per coordinate, for the pixelated Gaussian with background (their eq. 6):

    var = F * sigma_a^2 / N * [1 + ∫_0^1 ln t / (1 + t / tau) dt]^-1
    sigma_a^2 = sigma^2 + a^2 / 12,   tau = 2 pi sigma_a^2 b / (N a^2)

N photons, b background photons per pixel, a pixel size, F the excess noise factor (2 for
an EMCCD with gain, else 1). The integral equals tau * Li2(-1 / tau) in closed form.
"""

from __future__ import annotations

import numpy as np
from scipy.special import spence


def crlb_nm(photons, background, sigma_nm, pixel_size_nm, excess_noise_factor=1.0) -> np.ndarray:
    """Standard deviation bound (nm) of one coordinate; arguments broadcast."""
    photons = np.asarray(photons, dtype=np.float64)
    background = np.maximum(np.asarray(background, dtype=np.float64), 1e-12)
    sigma_a2 = np.asarray(sigma_nm, dtype=np.float64) ** 2 + pixel_size_nm**2 / 12.0
    tau = 2 * np.pi * sigma_a2 * background / (photons * pixel_size_nm**2)
    integral = tau * spence(1.0 + 1.0 / tau)  # Li2(z) = spence(1 - z)
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = excess_noise_factor * sigma_a2 / photons / (1.0 + integral)
    return np.sqrt(np.where(photons > 0, variance, np.inf))
