"""Cramér–Rao bounds of Gaussian spots fitted by maximum likelihood.

2-D, per coordinate, in closed form (Mortensen et al. 2010), for the pixelated Gaussian with background (their eq. 6):

    var = F * sigma_a^2 / N * [1 + ∫_0^1 ln t / (1 + t / tau) dt]^-1
    sigma_a^2 = sigma^2 + a^2 / 12,   tau = 2 pi sigma_a^2 b / (N a^2)

N photons, b background photons per pixel, a pixel size, F the excess noise factor (2 for
an EMCCD with gain, else 1). The integral equals tau * Li2(-1 / tau) in closed form.
3-D astigmatic: x, y and z from the Fisher information computed numerically (crlb_3d_nm).
"""

from __future__ import annotations

import numpy as np
from scipy.special import spence

from ..fit.scoring import ASTIGMATIC, Spots, fisher_scoring
from ..psf import PSF


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


def crlb_3d_nm(photons, background, z_nm, psf: PSF, pixel_size_nm: float,
               excess_noise_factor: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standard deviation bounds (nm) of x, y and z, each (N,), of spots fitted for (x, y, z,
    photons, background) under an astigmatic `psf`: the inverse of the Fisher information of the
    pixelated Gaussian with Poisson noise, summed numerically over an ROI of ±5 sigma around a spot
    at a pixel centre; arguments broadcast to (N,)."""
    photons, background, z = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, dtype=np.float64))
                                                   for v in (photons, background, z_nm)))
    widest_px = max(float(s.max()) for s in psf.sigmas_nm(z)) / pixel_size_nm
    size = 2 * int(np.ceil(5 * widest_px)) + 1
    centre = np.full(len(z), size / 2)
    theta = np.column_stack([centre, centre, z, photons, np.maximum(background, 1e-12)])
    limits = (np.full(5, np.inf), np.full(5, -np.inf), np.full(5, np.inf))
    spots = Spots(ASTIGMATIC, psf=psf, pixel_size_nm=pixel_size_nm)
    at = fisher_scoring(np.zeros((len(z), size * size)), theta, spots, limits, 0, size,
                        excess=excess_noise_factor)  # no step: the bounds where theta stands
    std = np.sqrt(at.variance)
    return std[:, 0] * pixel_size_nm, std[:, 1] * pixel_size_nm, std[:, 2]
