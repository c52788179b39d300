"""Groups of overlapping spots fitted jointly: x, y and photons of each emitter and one
background per group, under the Gaussian PSF of a known sigma, by the project's one Fisher
scoring loop (mle.fisher_scoring) with the camera's noise. Groups of different sizes share a
batch: a group of k < K emitters holds K - k padding emitters at 0 photons, fixed.

The PSF enters through `spot_model_and_jacobian` (pixel-integrated Gaussian); a measured
(spline) PSF would be another model function of the same form here."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..psf import spot_model_and_jacobian
from .mle import FitResult, fisher_scoring

N_ITER = 25
STEP_LIMIT_PX = 0.5  # largest position change per step
MISFIT_SIGMAS = 1.5  # an emitter's misfit is measured on the pixels this close to it


@dataclasses.dataclass
class GroupBatch:
    """G groups in R x R ROIs with up to K emitters each. counts_GRR: photons; read_variance_GRR:
    read-noise variance in photons² (0 where there is none); weight_GRR: 1 for the pixels that
    belong to the fit; xy_GK2: starting positions (px, in the ROI: pixel (r, c) covers
    [c, c + 1) x [r, r + 1)); photons_GK: starting photons; active_GK: real emitters (the rest pad)."""

    counts_GRR: np.ndarray
    read_variance_GRR: np.ndarray
    weight_GRR: np.ndarray
    xy_GK2: np.ndarray
    photons_GK: np.ndarray
    active_GK: np.ndarray


@dataclasses.dataclass
class JointFit:
    """Per emitter (G, K): x_px, y_px, photons, their Cramér–Rao sd (crlb_x_px, crlb_y_px,
    crlb_photons), misfit (the mean Poisson deviance of the pixels within MISFIT_SIGMAS of each:
    about 1 when the model explains them, more when light is missing there, e.g. from a
    neighbour the network merged into it); per group (G,): background (photons/px), loglik,
    converged."""

    x_px: np.ndarray
    y_px: np.ndarray
    photons: np.ndarray
    crlb_x_px: np.ndarray
    crlb_y_px: np.ndarray
    crlb_photons: np.ndarray
    background: np.ndarray
    loglik: np.ndarray
    converged: np.ndarray
    misfit: np.ndarray


def group_model(theta_GP: np.ndarray, sigma_px: float, size: int):
    """Expected photons (G, R*R) of groups theta = (x1, y1, N1, ..., xK, yK, NK, background) and
    the derivatives (G, R*R, 3K + 1)."""
    groups, k = len(theta_GP), (theta_GP.shape[1] - 1) // 3
    spots = theta_GP[:, :-1].reshape(groups * k, 3)
    sigma = np.full(len(spots), float(sigma_px))
    values, jac = spot_model_and_jacobian(spots[:, 0], spots[:, 1], sigma, sigma, spots[:, 2],
                                          np.zeros(len(spots)), size)
    values = values.reshape(groups, k, -1).sum(1) + theta_GP[:, -1:]
    per_spot = jac[..., [0, 1, 4]].reshape(groups, k, size * size, 3).transpose(0, 2, 1, 3)
    jac = np.concatenate([per_spot.reshape(groups, size * size, 3 * k), np.ones((groups, size * size, 1))], axis=-1)
    return np.maximum(values, 1e-6), jac


def fit_groups(batch: GroupBatch, sigma_px: float, excess: float = 1.0, n_iter: int = N_ITER) -> JointFit:
    """Jointly fit every group of `batch` (see GroupBatch); `excess` is the EM excess noise
    factor (2 for an EMCCD with gain, else 1)."""
    groups, size, _ = batch.counts_GRR.shape
    k = batch.xy_GK2.shape[1]
    counts = batch.counts_GRR.reshape(groups, -1)
    weight = batch.weight_GRR.reshape(groups, -1)
    background = _background_start(counts, weight)
    theta = np.concatenate([np.concatenate([batch.xy_GK2, np.where(batch.active_GK, np.maximum(
        batch.photons_GK, 1.0), 0.0)[..., None]], axis=-1).reshape(groups, 3 * k), background[:, None]], axis=1)
    fixed = np.concatenate([np.repeat(~batch.active_GK, 3, axis=1), np.zeros((groups, 1), bool)], axis=1)
    per_spot = lambda values: np.tile(values, k).tolist()  # noqa: E731 (x, y, N per emitter)
    limits = (np.array(per_spot([STEP_LIMIT_PX, STEP_LIMIT_PX, np.inf]) + [np.inf]),
              np.array(per_spot([-1.0, -1.0, 0.0]) + [1e-3]),
              np.array(per_spot([size + 1.0, size + 1.0, np.inf]) + [np.inf]))
    result: FitResult = fisher_scoring(counts, theta, lambda t, _rows: group_model(t, sigma_px, size), limits, n_iter,
                                       batch.read_variance_GRR.reshape(groups, -1), excess, weight, fixed)
    spots = result.theta[:, :-1].reshape(groups, k, 3)
    sd = np.sqrt(np.maximum(result.variance[:, :-1], 0)).reshape(groups, k, 3)
    centres = np.arange(size) + 0.5
    near = (((centres[None, None, None, :] - spots[..., 0, None, None]) ** 2
             + (centres[None, None, :, None] - spots[..., 1, None, None]) ** 2) <= (MISFIT_SIGMAS * sigma_px) ** 2)
    near = near.reshape(groups, k, -1) * weight[:, None, :]  # (G, K, R*R)
    misfit = (near * result.deviance_NK[:, None, :]).sum(-1) / np.maximum(near.sum(-1), 1.0)
    return JointFit(spots[..., 0], spots[..., 1], spots[..., 2], sd[..., 0], sd[..., 1], sd[..., 2],
                    result.theta[:, -1], result.loglik, result.converged, misfit)


def _background_start(counts_GK: np.ndarray, weight_GK: np.ndarray) -> np.ndarray:
    """The 20th percentile of each group's fitted pixels (photons/px), at least 0.1."""
    masked = np.where(weight_GK > 0, counts_GK, np.nan)
    with np.errstate(all="ignore"):
        start = np.nanpercentile(masked, 20, axis=1)
    return np.maximum(np.nan_to_num(start, nan=1.0), 0.1)
