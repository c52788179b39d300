"""Maximum-likelihood fit of Gaussian spots (x, y, photons, background) to ROIs.

Poisson likelihood, pixel-integrated Gaussian with known sigma, Fisher scoring vectorised
over spots. ROI coordinates: pixel (r, c) covers [c, c + 1) x [r, r + 1).
"""

from __future__ import annotations

import numpy as np

from ..psf import pixel_fractions

_SQRT_2PI = np.sqrt(2 * np.pi)


def fit_spots(rois: np.ndarray, sigma_px: float, n_iter: int = 30) -> dict[str, np.ndarray]:
    """Fit (N, R, R) photon ROIs. Returns x_px, y_px, photons, background, crlb_x_px,
    crlb_y_px (each (N,); the bounds from the Fisher information at the estimate)."""
    rois = np.maximum(np.asarray(rois, dtype=np.float64), 0.0)
    n, size, _ = rois.shape
    edges = np.arange(size, dtype=np.float64)
    background = np.maximum(np.percentile(rois.reshape(n, -1), 10, axis=1), 1e-3)
    signal = np.maximum(rois - background[:, None, None], 0)
    total = signal.sum(axis=(1, 2)) + 1e-9
    theta = np.column_stack([
        (signal.sum(axis=1) * (edges + 0.5)).sum(axis=1) / total,
        (signal.sum(axis=2) * (edges + 0.5)).sum(axis=1) / total,
        np.maximum(total, 1.0),
        background,
    ])
    for _ in range(n_iter):
        model, jac = _model_and_jacobian(theta, edges, sigma_px)
        fisher = np.einsum("nkp,nkq,nk->npq", jac, jac, 1.0 / model)
        score = np.einsum("nkp,nk->np", jac, rois.reshape(n, -1) / model - 1.0)
        step = np.linalg.solve(fisher + 1e-9 * np.eye(4), score[..., None])[..., 0]
        step[:, :2] = np.clip(step[:, :2], -1.0, 1.0)
        theta += step
        theta[:, 2] = np.maximum(theta[:, 2], 1.0)
        theta[:, 3] = np.maximum(theta[:, 3], 1e-3)
        theta[:, :2] = np.clip(theta[:, :2], -1.0, size + 1.0)
    model, jac = _model_and_jacobian(theta, edges, sigma_px)
    fisher = np.einsum("nkp,nkq,nk->npq", jac, jac, 1.0 / model)
    variance = np.diagonal(np.linalg.inv(fisher + 1e-9 * np.eye(4)), axis1=1, axis2=2)
    return {
        "x_px": theta[:, 0], "y_px": theta[:, 1], "photons": theta[:, 2], "background": theta[:, 3],
        "crlb_x_px": np.sqrt(variance[:, 0]), "crlb_y_px": np.sqrt(variance[:, 1]),
    }


def estimate_psf_sigma(rois: np.ndarray, sigmas_px: np.ndarray) -> float:
    """The PSF sigma (px) under which MLE fits of (N, R, R) photon ROIs of isolated spots are
    most likely: the summed Poisson log-likelihood over a grid of sigmas, refined by a parabola
    through the best grid point and its neighbours."""
    rois = np.maximum(np.asarray(rois, dtype=np.float64), 0.0)
    counts = rois.reshape(len(rois), -1)
    edges = np.arange(rois.shape[1], dtype=np.float64)
    loglik = []
    for sigma in sigmas_px:
        fit = fit_spots(rois, sigma)
        theta = np.column_stack([fit["x_px"], fit["y_px"], fit["photons"], fit["background"]])
        model, _ = _model_and_jacobian(theta, edges, sigma)
        loglik.append(float((counts * np.log(model) - model).sum()))
    i = int(np.clip(np.argmax(loglik), 1, len(sigmas_px) - 2))
    (x0, x1, x2), (y0, y1, y2) = sigmas_px[i - 1:i + 2], loglik[i - 1:i + 2]
    curvature = (y2 - y1) / (x2 - x1) - (y1 - y0) / (x1 - x0)
    if curvature >= 0:  # no interior maximum on the grid
        return float(sigmas_px[int(np.argmax(loglik))])
    vertex = (x0 + x1) / 2 - ((y1 - y0) / (x1 - x0)) * (x2 - x0) / (2 * curvature)
    return float(np.clip(vertex, x0, x2))


def _model_and_jacobian(theta: np.ndarray, edges: np.ndarray, sigma: float):
    """Expected photons (N, R*R) and d model / d (x, y, photons, background) (N, R*R, 4)."""
    x, y, photons, background = theta.T
    ex = pixel_fractions(edges, x[:, None], sigma)  # (N, R)
    ey = pixel_fractions(edges, y[:, None], sigma)
    dex = _fraction_slope(edges, x[:, None], sigma)
    dey = _fraction_slope(edges, y[:, None], sigma)
    n = len(theta)
    shape = ey[:, :, None] * ex[:, None, :]
    model = (background[:, None, None] + photons[:, None, None] * shape).reshape(n, -1)
    jac = np.stack([
        (photons[:, None, None] * ey[:, :, None] * dex[:, None, :]).reshape(n, -1),
        (photons[:, None, None] * dey[:, :, None] * ex[:, None, :]).reshape(n, -1),
        shape.reshape(n, -1),
        np.ones_like(model),
    ], axis=-1)
    return np.maximum(model, 1e-9), jac


def _fraction_slope(lo: np.ndarray, centre: np.ndarray, sigma: float) -> np.ndarray:
    """d pixel_fractions / d centre."""
    left = np.exp(-((lo - centre) ** 2) / (2 * sigma**2))
    right = np.exp(-((lo + 1 - centre) ** 2) / (2 * sigma**2))
    return (left - right) / (_SQRT_2PI * sigma)
