"""Maximum-likelihood fit of single Gaussian spots to ROIs: (x, y, photons, background) with a known
sigma, (x, y, z, photons, background) with an astigmatic PSF calibration, or (x, y, sigma_x,
sigma_y, photons, background) for calibration beads.

Poisson likelihood, pixel-integrated Gaussian, Fisher scoring vectorised over spots. ROI
coordinates: pixel (r, c) covers [c, c + 1) x [r, r + 1).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import numpy as np

from ..psf import PSF, astigmatic_model_and_jacobian, spot_model_and_jacobian

_XY, _AMPLITUDES = [0, 1], [4, 5]  # columns of spot_model_and_jacobian's derivatives
Z_STEP_LIMIT_NM = 100.0  # largest z change per Fisher step
Z_STARTS = 5  # z starting points spread over the PSF's z range; the most likely fit is kept


def fit_spots(rois: np.ndarray, sigma_px: float, n_iter: int = 30) -> dict[str, np.ndarray]:
    """Fit (N, R, R) photon ROIs with a round PSF of `sigma_px`. Returns x_px, y_px, photons,
    background, crlb_x_px, crlb_y_px (bounds from the Fisher information at the estimate) and
    loglik, each (N,)."""
    rois = np.maximum(np.asarray(rois, dtype=np.float64), 0.0)
    size = rois.shape[1]

    def model(theta, _rows):
        sigma = np.full(len(theta), float(sigma_px))
        values, jac = spot_model_and_jacobian(theta[:, 0], theta[:, 1], sigma, sigma, theta[:, 2], theta[:, 3], size)
        return values, jac[..., _XY + _AMPLITUDES]

    limits = (np.array([1.0, 1.0, np.inf, np.inf]), np.array([-1.0, -1.0, 1.0, 1e-3]),
              np.array([size + 1.0, size + 1.0, np.inf, np.inf]))
    theta, variance, loglik = _fisher_scoring(rois, _start(rois), model, limits, n_iter)
    return {
        "x_px": theta[:, 0], "y_px": theta[:, 1], "photons": theta[:, 2], "background": theta[:, 3],
        "crlb_x_px": np.sqrt(variance[:, 0]), "crlb_y_px": np.sqrt(variance[:, 1]), "loglik": loglik,
    }


def fit_spots_3d(rois: np.ndarray, psf: PSF, pixel_size_nm: float, n_iter: int = 40) -> dict[str, np.ndarray]:
    """Fit (N, R, R) photon ROIs with an astigmatic PSF. Starts from Z_STARTS depths spread
    over psf.z_range_nm and keeps the most likely fit per spot. Returns x_px, y_px, z_nm,
    photons, background, crlb_x_px, crlb_y_px, crlb_z_nm and loglik (each (N,))."""
    if not psf.astigmatism:
        raise ValueError("fit_spots_3d needs an astigmatic PSF")
    rois = np.maximum(np.asarray(rois, dtype=np.float64), 0.0)
    size = rois.shape[1]

    def model(theta, _rows):
        return astigmatic_model_and_jacobian(theta, psf, pixel_size_nm, size)

    low, high = psf.z_range_nm
    limits = (np.array([1.0, 1.0, Z_STEP_LIMIT_NM, np.inf, np.inf]),
              np.array([-1.0, -1.0, low, 1.0, 1e-3]), np.array([size + 1.0, size + 1.0, high, np.inf, np.inf]))
    xy_n_b = _start(rois)
    best = None
    for z0 in np.linspace(low, high, Z_STARTS + 2)[1:-1]:
        start = np.column_stack([xy_n_b[:, :2], np.full(len(rois), z0), xy_n_b[:, 2:]])
        theta, variance, loglik = _fisher_scoring(rois, start, model, limits, n_iter)
        if best is None:
            best = [theta, variance, loglik]
        else:
            better = loglik > best[2]
            for kept, new in zip(best, (theta, variance, loglik)):
                kept[better] = new[better]
    theta, variance, loglik = best
    return {
        "x_px": theta[:, 0], "y_px": theta[:, 1], "z_nm": theta[:, 2], "photons": theta[:, 3],
        "background": theta[:, 4], "crlb_x_px": np.sqrt(variance[:, 0]), "crlb_y_px": np.sqrt(variance[:, 1]),
        "crlb_z_nm": np.sqrt(variance[:, 2]), "loglik": loglik,
    }


def fit_elliptical_spots(rois: np.ndarray, n_iter: int = 40) -> dict[str, np.ndarray]:
    """Fit (N, R, R) photon ROIs with free widths (beads for PSF calibration). Returns x_px, y_px,
    sigma_x_px, sigma_y_px (in [0.3, R / 3] px), photons, background, loglik (each (N,))."""
    rois = np.maximum(np.asarray(rois, dtype=np.float64), 0.0)
    size = rois.shape[1]

    def model(theta, _rows):
        return spot_model_and_jacobian(*theta.T, size)

    start = _start(rois)
    widths = np.clip(_second_moments(rois, start), 0.5, size / 4)
    theta0 = np.column_stack([start[:, :2], widths, start[:, 2:]])
    limits = (np.array([1.0, 1.0, 0.5, 0.5, np.inf, np.inf]),
              np.array([-1.0, -1.0, 0.3, 0.3, 1.0, 1e-3]),
              np.array([size + 1.0, size + 1.0, size / 3, size / 3, np.inf, np.inf]))
    theta, _, loglik = _fisher_scoring(rois, theta0, model, limits, n_iter)
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


def _fisher_scoring(rois: np.ndarray, theta: np.ndarray, model: Callable, limits, n_iter: int):
    """Plain Poisson fisher_scoring of (N, R, R) ROIs (every pixel, no read noise)."""
    result = fisher_scoring(rois.reshape(len(rois), -1), theta, model, limits, n_iter)
    return result.theta, result.variance, result.loglik


@dataclasses.dataclass
class FitResult:
    """theta (N, P) at the estimate; variance (N, P): the Cramér–Rao variances there (the
    inverse Fisher information's diagonal, the camera's noise included); loglik (N,) up to a
    constant; converged (N,): finite, and the last step moved each parameter less than a hundredth
    of its Cramér–Rao sd or _tolerance (a parameter held on its bound does not move): the fit
    stopped there."""

    theta: np.ndarray
    variance: np.ndarray
    loglik: np.ndarray
    converged: np.ndarray
    counts_NK: np.ndarray = dataclasses.field(repr=False)  # the counts and expectations the fit compared (scaled)
    expected_NK: np.ndarray = dataclasses.field(repr=False)
    weight_NK: np.ndarray = dataclasses.field(repr=False)

    @functools.cached_property
    def deviance_NK(self) -> np.ndarray:
        """(N, K) each pixel's Poisson deviance (0 where left out): about 1 on average where the model holds."""
        counts, expected = self.counts_NK, self.expected_NK
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(counts > 0, counts * np.log(counts / expected), 0.0) - (counts - expected)
        return 2 * self.weight_NK * terms


def fisher_scoring(counts_NK: np.ndarray, theta: np.ndarray, model: Callable, limits, n_iter: int,
                   read_variance_NK: np.ndarray | float = 0.0, excess: float = 1.0,
                   weight_NK: np.ndarray | None = None, fixed_NP: np.ndarray | None = None,
                   bounds: bool = True) -> FitResult:
    """Maximum-likelihood estimate by Fisher scoring from `theta` (N, P), the one fitting loop
    of the project. counts_NK: photons in K pixels; model(theta, rows) -> (expected photons (n, K),
    their derivatives (n, K, P)) of the n fits `rows` (indexes into counts_NK) whose parameters
    theta (n, P) holds; limits = (largest step, lower bound, upper bound), each (P,).

    The camera's noise as it is: read noise of variance `read_variance_NK` (photons², per pixel:
    an sCMOS variance map, or read noise) through the shifted-Poisson approximation (counts + v
    ~ Poisson(model + v)); the EM excess noise factor `excess` (2 for an EMCCD with gain) by
    scaling counts and model by 1 / excess. weight_NK (0 or 1) leaves pixels out; fixed_NP
    (bool) holds parameters where they start (e.g. all but the parent's width in split.py).
    bounds False skips the Cramér–Rao variances (NaN) where only the estimate and its likelihood
    are wanted.

    Every step goes uphill: one longer than a parameter's step limit is shortened as a whole, a
    parameter on its bound that the step would push beyond it is held there, and a step that
    lowered the likelihood is halved back (without these, about one astigmatic fit in ten
    oscillated or ran against the calibration's z range and never converged)."""
    step_limit, lower, upper = limits
    offset = np.broadcast_to(np.asarray(read_variance_NK, np.float64), counts_NK.shape)
    weight = np.ones_like(counts_NK, dtype=np.float64) if weight_NK is None else np.asarray(weight_NK, np.float64)
    counts = np.maximum(np.nan_to_num(np.asarray(counts_NK, np.float64)) + offset, 0.0) / excess
    free = np.ones(theta.shape, bool) if fixed_NP is None else ~np.asarray(fixed_NP, bool)
    ridge = 1e-9 * np.eye(theta.shape[1])
    theta = theta.copy()

    def expectation(rows, theta_rows):
        """expected (n, K) scaled counts of the fits `rows`, and the model's derivatives."""
        values, jac = model(theta_rows, rows)
        return (values + offset[rows]) / excess, jac

    def information(rows, theta_rows):
        """expected (n, K), the Fisher information (n, P, P) and the score (n, P) of the fits `rows`."""
        expected, jac = expectation(rows, theta_rows)
        scale = weight[rows] / excess  # the derivatives of the scaled counts' expectations, per unit of jac
        fisher = gram(jac, scale * scale / expected)
        fisher += np.eye(theta.shape[1]) * ~free[rows][:, :, None]  # a held parameter: no information needed
        return expected, fisher, project(jac, scale * (counts[rows] / expected - 1.0)) * free[rows]

    def log_likelihood(rows, expected):
        return (weight[rows] * (counts[rows] * np.log(expected) - expected)).sum(axis=1)

    converged = np.zeros(len(theta), bool)
    moving = np.arange(len(theta))  # fits still taking steps: settled ones are left where they are
    origin, reached = theta.copy(), np.full(len(theta), -np.inf)  # where each fit last stepped from, its loglik
    sd = np.zeros(theta.shape)  # the Cramér–Rao sd at `origin`: a step well below it has converged
    for _ in range(n_iter):
        expected, fisher, score = information(moving, theta[moving])
        loglik = log_likelihood(moving, expected)
        # a step that lowered the likelihood (overshot) is halved back towards where it started
        worse = loglik < reached[moving] - 1e-9 * np.abs(reached[moving])
        back, ahead = moving[worse], moving[~worse]
        change_back = np.abs(theta[back] - origin[back]) / 2
        theta[back] = (theta[back] + origin[back]) / 2
        origin[ahead], reached[ahead] = theta[ahead], loglik[~worse]
        fisher, score = fisher[~worse], score[~worse]
        inverse = np.linalg.inv(fisher + ridge)  # the step and the Cramér–Rao sd from one factorisation
        step = np.matmul(inverse, score[..., None])[..., 0]
        # parameters on a bound that the step pushes beyond it are held there, the rest stepped without them
        pinned = ((theta[ahead] <= lower) & (step < 0)) | ((theta[ahead] >= upper) & (step > 0))
        on = pinned.any(1)
        if on.any():
            held = ~pinned[on]
            on_bound = fisher[on] * held[:, :, None] * held[:, None, :] + np.eye(len(lower)) * pinned[on][:, :, None]
            step[on] = np.linalg.solve(on_bound + ridge, (score[on] * held)[..., None])[..., 0]
        finite = np.isfinite(step)
        step = np.nan_to_num(step)
        # a step longer than a parameter's limit is shortened as a whole, keeping its direction (uphill)
        step *= np.min(np.minimum(1.0, step_limit / np.maximum(np.abs(step), 1e-300)), axis=1, keepdims=True)
        theta[ahead] = np.clip(theta[ahead] + step, lower, upper)
        change = np.where(finite, np.abs(theta[ahead] - origin[ahead]), np.inf)
        with np.errstate(invalid="ignore"):
            sd[ahead] = np.sqrt(np.abs(np.diagonal(inverse, axis1=1, axis2=2)))
        for rows, moved in ((ahead, change), (back, change_back)):
            converged[rows] = (moved <= np.maximum(_tolerance(theta[rows], step_limit), 1e-2 * sd[rows])).all(1)
        moving = moving[~converged[moving]]  # a converged fit stops where it is
        if not len(moving):
            break
    if len(moving):  # out of iterations: a last step that lowered the likelihood is taken back
        worse = log_likelihood(moving, expectation(moving, theta[moving])[0]) < reached[moving]
        theta[moving[worse]] = origin[moving[worse]]
    everything = np.arange(len(theta))
    variance = np.full(theta.shape, np.nan)
    if bounds:
        expected, fisher, _ = information(everything, theta)
        with np.errstate(invalid="ignore"):
            variance = np.diagonal(np.linalg.pinv(fisher + ridge), axis1=1, axis2=2).copy()
        converged &= np.isfinite(variance).all(1)
    else:
        expected = expectation(everything, theta)[0]
    loglik = log_likelihood(everything, expected)
    converged &= np.isfinite(theta).all(1)
    return FitResult(theta, variance, loglik, converged, counts, expected, weight)


class SpotOverSurface:
    """The derivatives (N, K, 1 + Q) of a model linear in a spot's photons and Q terms of a
    background surface: the spot's unit shape spot_NK (each row its own; None: the surface alone,
    (N, K, Q)) and the terms terms_KQ over the same K pixels in every row. gram and project form
    their products as matrix products over K, without the (N, K, 1 + Q) array."""

    def __init__(self, spot_NK: np.ndarray | None, terms_KQ: np.ndarray):
        self.spot_NK, self.terms_KQ = spot_NK, terms_KQ
        self.outer_KQQ = (terms_KQ[:, :, None] * terms_KQ[:, None, :]).reshape(len(terms_KQ), -1)

    def values(self, theta_NP: np.ndarray) -> np.ndarray:
        """(N, K) the model's linear part at parameters (photons, terms) (or terms alone)."""
        surface = theta_NP[:, -self.terms_KQ.shape[1]:] @ self.terms_KQ.T
        return surface if self.spot_NK is None else surface + self.spot_NK * theta_NP[:, :1]

    def take(self, rows) -> SpotOverSurface:
        """The derivatives of the rows `rows` alone."""
        taken = SpotOverSurface.__new__(SpotOverSurface)
        taken.spot_NK, taken.terms_KQ, taken.outer_KQQ = self.spot_NK[rows], self.terms_KQ, self.outer_KQQ
        return taken


def gram(jac, d_NK: np.ndarray) -> np.ndarray:
    """(N, P, P) jacᵀ diag(d) jac per row, of jac (N, K, P) or a SpotOverSurface."""
    if not isinstance(jac, SpotOverSurface):
        return np.matmul(jac.transpose(0, 2, 1), jac * d_NK[..., None])  # batched BLAS
    q = jac.terms_KQ.shape[1]
    surface = (d_NK @ jac.outer_KQQ).reshape(len(d_NK), q, q)
    if jac.spot_NK is None:
        return surface
    weighted = d_NK * jac.spot_NK
    cross = weighted @ jac.terms_KQ
    return np.block([[(weighted * jac.spot_NK).sum(1)[:, None, None], cross[:, None, :]], [cross[:, :, None], surface]])


def project(jac, r_NK: np.ndarray) -> np.ndarray:
    """(N, P) jacᵀ r per row, of jac (N, K, P) or a SpotOverSurface."""
    if not isinstance(jac, SpotOverSurface):
        return np.matmul(jac.transpose(0, 2, 1), r_NK[..., None])[..., 0]
    surface = r_NK @ jac.terms_KQ
    return surface if jac.spot_NK is None else np.column_stack([(r_NK * jac.spot_NK).sum(1), surface])


def _tolerance(theta: np.ndarray, step_limit: np.ndarray) -> np.ndarray:
    """A step this small leaves a parameter where it is: a thousandth of its step limit
    (positions), or of its value (photons, background: no step limit)."""
    return np.where(np.isfinite(step_limit), 1e-3 * step_limit, 1e-3 * np.abs(theta) + 1e-9)


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
