"""Model selection after the joint fit: an emitter the network missed beside those it found.

The light a group's fit leaves unexplained is searched with the PSF as a matched filter: at each
pixel centre of the group's pixels (and, under an astigmatic PSF, at each of SEARCH_DEPTHS depths
over the calibration's range), the score (Σ r h / v)² / Σ h² / v of a spot h there (r: the data
less the group's model; v: each pixel's variance under that model) is twice the rise in
log-likelihood that one more spot of the best photons would bring with everything else held.
Where the best score of a group reaches ADD_GATE, the group is fitted again with one emitter
more, starting there with those photons. The new emitter stands when the refit raises the
likelihood by 2 ΔlogL ≥ ADD_LOGLIK, it lies at least split.MIN_SEPARATION_SIGMAS PSF sigmas from
every member, and, under a round PSF, the group with it also beats its nearest member as one
spot of free width by as much (a PSF wider than the fit's sigma leaves a ring of light around
every bright spot, split.py). One emitter is added per group and fit.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import correlate

from .joint import AstigmaticSpots, GroupBatch, JointFit, SpotModel, fit_groups, member_light
from .split import MIN_SEPARATION_SIGMAS, Splits, wider_single_loglik

ADD_GATE = 25.0
ADD_LOGLIK = 25.0
SEARCH_DEPTHS = 5  # depths (spread over the calibration's z range) searched under an astigmatic PSF
KERNEL_SIGMAS = 3.0  # the matched filter reaches this many PSF sigmas


def add_missed(batch: GroupBatch, fit: JointFit, holds_GK: np.ndarray, spots: SpotModel,
               excess: float = 1.0) -> tuple[Splits, np.ndarray] | None:
    """Try one emitter more in each group of `batch` where a member's fit holds and the best
    score of its residual reaches ADD_GATE. Returns the refits (as split.Splits: `parent` is the
    member nearest the new emitter, which takes slot K) and the new emitters' starts (S, 2) (x, y
    px in the ROI); None where no group is a candidate."""
    score, start_xy, start_z, start_photons = _best_spot(batch, fit, spots, excess)
    groups = np.flatnonzero(holds_GK.any(1) & fit.converged & (score >= ADD_GATE))
    if not len(groups):
        return None
    k, rows = batch.xy_GK2.shape[1], np.arange(len(groups))
    active = batch.active_GK[groups]
    xy = np.stack([fit.x_px[groups], fit.y_px[groups]], axis=-1)
    z = None if fit.z_nm is None else np.concatenate([fit.z_nm[groups], start_z[groups, None]], axis=1)
    trial = GroupBatch(batch.counts_GRR[groups], batch.read_variance_GRR[groups], batch.weight_GRR[groups],
                       np.concatenate([xy, start_xy[groups, None]], axis=1),
                       np.concatenate([np.where(active, fit.photons[groups], 0.0), start_photons[groups, None]], axis=1),
                       np.concatenate([active, np.ones((len(groups), 1), bool)], axis=1), z,
                       None if batch.known_GRR is None else batch.known_GRR[groups])
    refit = fit_groups(trial, spots, excess)
    new = np.column_stack([refit.x_px[:, k], refit.y_px[:, k]])
    distance = np.where(active, np.hypot(refit.x_px[:, :k] - new[:, :1], refit.y_px[:, :k] - new[:, 1:]), np.inf)
    nearest = distance.argmin(1)
    sigma = np.maximum(*spots.sigmas_px(np.zeros(len(groups)) if refit.z_nm is None else refit.z_nm[:, k]))
    gain = 2 * (refit.loglik - fit.loglik[groups])
    accepted = (refit.converged & (gain >= ADD_LOGLIK) & (refit.photons[:, k] > 0)
                & (distance[rows, nearest] >= MIN_SEPARATION_SIGMAS * sigma))
    if not isinstance(spots, AstigmaticSpots) and accepted.any():
        wide = wider_single_loglik(batch, fit, groups[accepted], nearest[accepted], spots, excess)
        accepted[accepted] = 2 * (refit.loglik[accepted] - wide) >= ADD_LOGLIK
    return Splits(groups, nearest, refit, accepted), start_xy[groups]


def _best_spot(batch: GroupBatch, fit: JointFit, spots: SpotModel, excess: float):
    """Per group (G,): the best matched-filter score of its residual over its pixels and the
    search depths, where (x, y px in the ROI, (G, 2)), at which depth (nm; 0 under a round PSF),
    and the photons of a spot there (at least 1)."""
    groups, size, _ = batch.counts_GRR.shape
    light = member_light(fit.x_px, fit.y_px, fit.z_nm, np.where(batch.active_GK, fit.photons, 0.0), spots, size)
    expected = np.maximum(light.sum(1) + fit.background[:, None, None]
                          + (0.0 if batch.known_GRR is None else batch.known_GRR), 1e-6)
    variance = excess * (expected + batch.read_variance_GRR)
    weight = batch.weight_GRR / variance
    depths = np.linspace(*spots.psf.z_range_nm, SEARCH_DEPTHS) if isinstance(spots, AstigmaticSpots) else np.zeros(1)
    kernels = _kernels(spots, depths)  # (D, k, k)
    best = np.zeros((len(depths), groups, size, size))
    photons = np.zeros_like(best)
    for d, kernel in enumerate(kernels):
        fit_sum = correlate((batch.counts_GRR - expected) * weight, kernel[None], mode="constant")
        norm = np.maximum(correlate(weight, kernel[None] ** 2, mode="constant"), 1e-12)
        photons[d] = fit_sum / norm
        best[d] = np.where((photons[d] > 0) & (batch.weight_GRR > 0), fit_sum ** 2 / norm, 0.0)
    flat = best.transpose(1, 0, 2, 3).reshape(groups, -1)
    at = flat.argmax(1)
    d, r, c = np.unravel_index(at, (len(depths), size, size))
    rows = np.arange(groups)
    return (flat[rows, at], np.column_stack([c + 0.5, r + 0.5]), depths[d],
            np.maximum(photons[d, rows, r, c], 1.0))


def _kernels(spots: SpotModel, depths: np.ndarray) -> np.ndarray:
    """(D, k, k) one photon's spot centred on the middle pixel of a k x k window, at each depth."""
    widest = max(float(np.max(s)) for s in spots.sigmas_px(depths))
    k = 2 * int(np.ceil(KERNEL_SIGMAS * widest)) + 1
    centre = np.full((len(depths), 2), k / 2)
    values, _ = spots.spots(spots.start(centre, depths, np.ones(len(depths))), k)
    return values.reshape(len(depths), k, k)
