"""Maximum-likelihood fit of single Gaussian spots to ROIs: (x, y, photons, background) with a known
sigma, (x, y, z, photons, background) with an astigmatic PSF calibration, or (x, y, sigma_x,
sigma_y, photons, background) for calibration beads.

Poisson likelihood, pixel-integrated Gaussian, by the project's one fitting loop
(scoring.fisher_scoring). ROI coordinates: pixel (r, c) covers [c, c + 1) x [r, r + 1).
"""

from __future__ import annotations

import numpy as np

from ..psf import PSF
from .joint import misfit_near
from .scoring import ASTIGMATIC, FREE_ELLIPTICAL, ROUND, FitResult, Spots, fisher_scoring

Z_STEP_LIMIT_NM = 100.0  # largest z change per Fisher step
Z_STARTS = 5  # z starting points spread over the PSF's z range; the most likely fit is kept


def fit_spots(rois: np.ndarray, sigma_px: float, n_iter: int = 30) -> dict[str, np.ndarray]:
    """Fit (N, R, R) photon ROIs with a round PSF of `sigma_px`. Returns x_px, y_px, photons,
    background, crlb_x_px, crlb_y_px (bounds from the Fisher information at the estimate),
    misfit (joint.misfit_near: light the spot does not explain) and loglik, each (N,)."""
    rois = np.maximum(np.asarray(rois, dtype=np.float64), 0.0)
    size = rois.shape[1]
    spots = Spots(ROUND, np.full((len(rois), 1, 2), float(sigma_px)))
    limits = (np.array([1.0, 1.0, np.inf, np.inf]), np.array([-1.0, -1.0, 1.0, 1e-3]),
              np.array([size + 1.0, size + 1.0, np.inf, np.inf]))
    result = _fisher_scoring(rois, _start(rois), spots, limits, n_iter)
    theta, variance = result.theta, result.variance
    return {
        "x_px": theta[:, 0], "y_px": theta[:, 1], "photons": theta[:, 2], "background": theta[:, 3],
        "crlb_x_px": np.sqrt(variance[:, 0]), "crlb_y_px": np.sqrt(variance[:, 1]),
        "misfit": _misfit(result.deviance_NK, theta[:, 0], theta[:, 1], np.full(len(rois), float(sigma_px)), size),
        "loglik": result.loglik,
    }


def fit_spots_3d(rois: np.ndarray, psf: PSF, pixel_size_nm: float, n_iter: int = 40) -> dict[str, np.ndarray]:
    """Fit (N, R, R) photon ROIs with an astigmatic PSF. Starts from Z_STARTS depths spread
    over psf.z_range_nm and keeps the most likely fit per spot. Returns x_px, y_px, z_nm,
    photons, background, crlb_x_px, crlb_y_px, crlb_z_nm, misfit (as fit_spots) and loglik
    (each (N,))."""
    if not psf.astigmatism:
        raise ValueError("fit_spots_3d needs an astigmatic PSF")
    rois = np.maximum(np.asarray(rois, dtype=np.float64), 0.0)
    size = rois.shape[1]
    spots = Spots(ASTIGMATIC, psf=psf, pixel_size_nm=pixel_size_nm)
    low, high = psf.z_range_nm
    limits = (np.array([1.0, 1.0, Z_STEP_LIMIT_NM, np.inf, np.inf]),
              np.array([-1.0, -1.0, low, 1.0, 1e-3]), np.array([size + 1.0, size + 1.0, high, np.inf, np.inf]))
    xy_n_b = _start(rois)
    best = None
    for z0 in np.linspace(low, high, Z_STARTS + 2)[1:-1]:
        start = np.column_stack([xy_n_b[:, :2], np.full(len(rois), z0), xy_n_b[:, 2:]])
        result = _fisher_scoring(rois, start, spots, limits, n_iter)
        fits = [result.theta, result.variance, result.loglik, result.deviance_NK]
        if best is None:
            best = fits
        else:
            better = fits[2] > best[2]
            for kept, new in zip(best, fits):
                kept[better] = new[better]
    theta, variance, loglik, deviance = best
    width = np.maximum(*psf.sigmas_nm(theta[:, 2])) / pixel_size_nm
    return {
        "x_px": theta[:, 0], "y_px": theta[:, 1], "z_nm": theta[:, 2], "photons": theta[:, 3],
        "background": theta[:, 4], "crlb_x_px": np.sqrt(variance[:, 0]), "crlb_y_px": np.sqrt(variance[:, 1]),
        "crlb_z_nm": np.sqrt(variance[:, 2]), "misfit": _misfit(deviance, theta[:, 0], theta[:, 1], width, size),
        "loglik": loglik,
    }


def _misfit(deviance_NM: np.ndarray, x_px: np.ndarray, y_px: np.ndarray, width_px: np.ndarray, size: int) -> np.ndarray:
    """(N,) joint.misfit_near of one spot per ROI (its size x size pixels M, every one fitted)."""
    grid = np.arange(size * size)[None]
    return misfit_near(deviance_NM, grid // size, grid % size, np.ones(grid.shape), x_px[:, None], y_px[:, None],
                       width_px[:, None])[:, 0]


def fit_elliptical_spots(rois: np.ndarray, n_iter: int = 40) -> dict[str, np.ndarray]:
    """Fit (N, R, R) photon ROIs with free widths (beads for PSF calibration). Returns x_px, y_px,
    sigma_x_px, sigma_y_px (in [0.3, R / 3] px), photons, background, loglik (each (N,))."""
    rois = np.maximum(np.asarray(rois, dtype=np.float64), 0.0)
    size = rois.shape[1]
    start = _start(rois)
    widths = np.clip(_second_moments(rois, start), 0.5, size / 4)
    theta0 = np.column_stack([start[:, :2], widths, start[:, 2:]])
    limits = (np.array([1.0, 1.0, 0.5, 0.5, np.inf, np.inf]),
              np.array([-1.0, -1.0, 0.3, 0.3, 1.0, 1e-3]),
              np.array([size + 1.0, size + 1.0, size / 3, size / 3, np.inf, np.inf]))
    result = _fisher_scoring(rois, theta0, Spots(FREE_ELLIPTICAL), limits, n_iter)
    theta, loglik = result.theta, result.loglik
    names = ("x_px", "y_px", "sigma_x_px", "sigma_y_px", "photons", "background")
    return {**{name: theta[:, i] for i, name in enumerate(names)}, "loglik": loglik}


def _second_moments(rois: np.ndarray, start: np.ndarray) -> np.ndarray:
    """(N, 2) sigma_x, sigma_y (px) from the background-subtracted second moments about the start."""
    size = rois.shape[1]
    centres = np.arange(size) + 0.5
    signal = np.maximum(rois - start[:, 3, None, None], 0)
    total = signal.sum(axis=(1, 2)) + 1e-9
    var_x = (signal.sum(axis=1) * (centres - start[:, 0, None]) ** 2).sum(axis=1) / total
    var_y = (signal.sum(axis=2) * (centres - start[:, 1, None]) ** 2).sum(axis=1) / total
    return np.sqrt(np.column_stack([var_x, var_y]))


def _start(rois: np.ndarray) -> np.ndarray:
    """(N, 4) starting x, y (centroid above the 10th-percentile background), photons, background."""
    n, size, _ = rois.shape
    centres = np.arange(size) + 0.5
    background = np.maximum(np.percentile(rois.reshape(n, -1), 10, axis=1), 1e-3)
    signal = np.maximum(rois - background[:, None, None], 0)
    total = signal.sum(axis=(1, 2)) + 1e-9
    return np.column_stack([(signal.sum(axis=1) * centres).sum(axis=1) / total,
                            (signal.sum(axis=2) * centres).sum(axis=1) / total,
                            np.maximum(total, 1.0), background])


def _fisher_scoring(rois: np.ndarray, theta: np.ndarray, spots: Spots, limits, n_iter: int) -> FitResult:
    """Plain Poisson fisher_scoring of (N, R, R) ROIs (every pixel, no read noise, a constant background)."""
    return fisher_scoring(rois.reshape(len(rois), -1), theta, spots, limits, n_iter, rois.shape[1])


def estimate_psf_sigma(rois: np.ndarray, sigmas_px: np.ndarray) -> float:
    """The PSF sigma (px) under which MLE fits of (N, R, R) photon ROIs of isolated spots are
    most likely (most_likely_sigma over the grid sigmas_px)."""
    return most_likely_sigma(sigmas_px, [float(fit_spots(rois, sigma)["loglik"].sum()) for sigma in sigmas_px])


def most_likely_sigma(sigmas_px: np.ndarray, loglik: list[float]) -> float:
    """The sigma (px) of largest log-likelihood over a grid: the best grid point, refined by a
    parabola through it and its neighbours."""
    i = int(np.clip(np.argmax(loglik), 1, len(sigmas_px) - 2))
    (x0, x1, x2), (y0, y1, y2) = sigmas_px[i - 1:i + 2], loglik[i - 1:i + 2]
    curvature = (y2 - y1) / (x2 - x1) - (y1 - y0) / (x1 - x0)
    if curvature >= 0:  # no interior maximum on the grid
        return float(sigmas_px[int(np.argmax(loglik))])
    vertex = (x0 + x1) / 2 - ((y1 - y0) / (x1 - x0)) * (x2 - x0) / (2 * curvature)
    return float(np.clip(vertex, x0, x2))
