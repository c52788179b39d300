"""Model selection after the joint fit: whether a detection is two emitters the network merged.

An emitter whose fit leaves light unexplained around it (misfit ≥ MISFIT_GATE) is tried as two:
both start on the axis along which the light around it is widest (second moments of the data
less the group's other spots), half a spot's excess width either side, with half the photons
each, and the whole group is fitted again with one emitter more. The split stands when the
likelihood rises enough (2 ΔlogL ≥ SPLIT_LOGLIK), each half carries at least MIN_SHARE of the
pair's photons and they lie at least MIN_SEPARATION_SIGMAS PSF sigmas apart; and, under a round
PSF, the pair must also beat one spot of free width (2 ΔlogL ≥ WIDER_LOGLIK): a PSF wider than
the sigma the fit was given makes every bright spot look like a pair (with the sigma 15 % too
small, 87 of 576 splits over the validation stacks were false even with this test, gate 0.9,
`--sigma-factor 0.85`). The constants were chosen on our own validation stacks
(benchmarks/split_validation.py, seeds 12,000,300+, 10 frames each: sCMOS and EMCCD at 0.1-4
/µm², bright spots under a PSF halo the fit does not model, bright one-pixel-wide spots at 1
and 3 /µm²; docs/refinement.md has the grid). Since the spot of free width is fitted with the
other members' widths truly held (they used to drift with its steps, which left it short of its
optimum), WIDER_LOGLIK 15 made 499 splits (2 false), 11 makes 519 (2 false; Jaccard 77.70 ->
78.89 % over the 13 stacks); both rises at 10 made 545 with 5 false."""

from __future__ import annotations

import dataclasses

import numpy as np

from .joint import (N_ITER, STEP_LIMIT_PX, AstigmaticSpots, GroupBatch, JointFit, RoundSpots, SpotModel, fit_from,
                    fit_groups)
from .scoring import FREE_ROUND, Spots

MISFIT_GATE = 1.3
SPLIT_LOGLIK = 15.0
WIDER_LOGLIK = 11.0
MIN_SHARE = 0.2
MIN_SEPARATION_SIGMAS = 0.7
MOMENT_SIGMAS = 2.0  # the light of a candidate is measured within this many PSF sigmas of it


@dataclasses.dataclass
class Splits:
    """The groups (`groups`, (S,) indexes of the batch) refitted with one emitter more: `fit` has
    K + 1 emitters per group, the parent's in its own slot and the new one in slot K;
    `parent` (S,): the slot that was split; parent_sigma_px (S,): the larger PSF sigma (px) at its
    refitted depth; `accepted` (S,): the splits that stand."""

    groups: np.ndarray
    parent: np.ndarray
    fit: JointFit
    accepted: np.ndarray
    parent_sigma_px: np.ndarray


def split_merged(batch: GroupBatch, fit: JointFit, holds_GK: np.ndarray, spots: SpotModel,
                 excess: float = 1.0) -> Splits | None:
    """Try one split per group of `batch` (its emitter of largest misfit among those whose fit
    holds); None when no emitter is a candidate."""
    misfit = np.where(holds_GK, fit.misfit, 0.0)
    parent = misfit.argmax(1)
    groups = np.flatnonzero(misfit[np.arange(len(misfit)), parent] >= MISFIT_GATE)
    if not len(groups):
        return None
    parent = parent[groups]
    trial = _split_starts(batch, fit, groups, parent, spots)
    refit = fit_groups(trial, spots, excess)
    if isinstance(spots, AstigmaticSpots):
        halves = np.column_stack([parent, np.full(len(parent), trial.xy_GK2.shape[1] - 1)])  # (S, 2) their slots
        refit = _from_the_foci(trial, halves, refit, spots, excess)
    k = batch.xy_GK2.shape[1]
    rows = np.arange(len(groups))
    a = np.column_stack([refit.x_px[rows, parent], refit.y_px[rows, parent]])
    b = np.column_stack([refit.x_px[:, k], refit.y_px[:, k]])
    pa, pb = refit.photons[rows, parent], refit.photons[:, k]
    sigma = np.maximum(*spots.sigmas_px(np.zeros(len(groups)) if refit.z_nm is None else refit.z_nm[rows, parent]))
    accepted = (refit.converged & (2 * (refit.loglik - fit.loglik[groups]) >= SPLIT_LOGLIK)
                & (np.minimum(pa, pb) >= MIN_SHARE * (pa + pb))
                & (np.hypot(*(a - b).T) >= MIN_SEPARATION_SIGMAS * sigma))
    if isinstance(spots, RoundSpots) and accepted.any():
        wide = _wider_single_loglik(batch, fit, groups[accepted], parent[accepted], spots, excess)
        accepted[accepted] = 2 * (refit.loglik[accepted] - wide) >= WIDER_LOGLIK
    return Splits(groups, parent, refit, accepted, sigma)


def _from_the_foci(trial: GroupBatch, halves: np.ndarray, refit: JointFit, spots: AstigmaticSpots,
                   excess: float) -> JointFit:
    """3-D: the two halves of each split trial (their slots `halves` (S, 2) in `trial`) fitted
    again from the calibration's two foci, one at each, both ways round, beside the group's other
    members held at the split's fit (2 emitters instead of up to MAX_EMITTERS + 1); the most likely
    fit of the halves kept. Two spots side by side look like one spot stretched along them, which
    astigmatism also makes: from the parent's depth alone the halves often end on either side of
    their true depths. On 3-D validation stacks
    (seeds 12,200,410-412, 0.5 / 1 / 2 /µm²) splits standing 71 / 69 / 118 -> 80 / 101 / 145, of
    them matching no emitter 1 / 4 / 6 -> 1 / 6 / 11; axial RMSE of the split-off rows 85 / 127 /
    152 -> 81 / 97 / 128 nm."""
    n, k = halves.shape[0], trial.xy_GK2.shape[1] - 1
    rows, size = np.arange(n), trial.counts_GRR.shape[1]
    params = np.nan_to_num(np.stack([refit.x_px, refit.y_px, refit.z_nm, refit.photons], axis=-1))  # (S, K+1, 4)
    rest = params.copy()
    rest[rows[:, None], halves, 3] = 0.0
    held = spots.light(rest.reshape(-1, 4), size).reshape(n, k + 1, size, size).sum(1)
    if trial.known_GRR is not None:
        held = held + trial.known_GRR
    best = refit
    foci = spots.psf.curve_x.focus_nm, spots.psf.curve_y.focus_nm
    for depths in (foci, foci[::-1]):
        pair = fit_groups(GroupBatch(trial.counts_GRR, trial.read_variance_GRR, trial.weight_GRR,
                                     trial.xy_GK2[rows[:, None], halves], trial.photons_GK[rows[:, None], halves],
                                     np.tile(np.asarray(depths, np.float64), (n, 1)), held, trial.size_G),
                                     spots, excess)
        wins = pair.converged & (~best.converged | (pair.loglik > best.loglik))
        best = _with_halves(best, halves, pair, wins)
    return best


def _with_halves(fit: JointFit, halves: np.ndarray, pair: JointFit, rows: np.ndarray) -> JointFit:
    """`fit` with the emitters in slots `halves` (S, 2) and the group's background, likelihood and
    convergence taken from `pair` (their fit beside the others held) where `rows` (S,)."""
    values = {}
    for field in dataclasses.fields(JointFit):
        value, new = getattr(fit, field.name), getattr(pair, field.name)
        if value is not None:
            value = value.copy()
            if value.ndim == 1:
                value[rows] = new[rows]
            else:
                taken = np.flatnonzero(rows)
                value[taken[:, None], halves[taken]] = new[taken]
        values[field.name] = value
    return JointFit(**values)


class _FreeWidthSpots:
    """Round Gaussian spots whose sigma is fitted too: per emitter x, y, sigma (px) and photons,
    the sigma between half and three times the PSF's."""

    def __init__(self, sigma_px: float):
        self.step = np.array([STEP_LIMIT_PX, STEP_LIMIT_PX, 0.25 * sigma_px, np.inf])
        self.lower = np.array([-1.0, -1.0, 0.5 * sigma_px, 0.0])
        self.sigma_px = sigma_px

    def upper(self, size_G: np.ndarray) -> np.ndarray:
        edge = np.asarray(size_G, np.float64)[:, None] + 1.0
        return np.concatenate([edge, edge, np.full(edge.shape, 3.0 * self.sigma_px), np.full(edge.shape, np.inf)],
                              axis=1)

    def loop_spots(self, groups: int, k: int) -> Spots:
        return Spots(FREE_ROUND)


def _wider_single_loglik(batch: GroupBatch, fit: JointFit, groups: np.ndarray, parent: np.ndarray,
                         spots: RoundSpots, excess: float) -> np.ndarray:
    """(S,) log-likelihood of the groups refitted with the parent one spot whose sigma is free
    (every member from its fit; the others keep the PSF's sigma)."""
    k = batch.xy_GK2.shape[1]
    wide = _FreeWidthSpots(spots.sigma_px)
    rows = np.arange(len(groups))
    params = np.stack([fit.x_px[groups], fit.y_px[groups], np.full((len(groups), k), spots.sigma_px),
                       fit.photons[groups]], axis=-1)  # (S, K, 4)
    params[rows, parent, 2] *= 1.2  # the parent starts a little wider
    theta = np.concatenate([params.reshape(len(groups), -1), fit.background[groups, None]], axis=1)
    fixed = np.zeros((len(groups), 4 * k), bool)
    fixed[:, 2::4] = True
    fixed[rows, 4 * parent + 2] = False  # the parent's sigma alone is free
    fixed = np.concatenate([fixed, np.zeros((len(groups), 1), bool)], axis=1)
    return fit_from(batch.take(groups), wide, theta, fixed, excess, N_ITER).loglik


def _split_starts(batch: GroupBatch, fit: JointFit, groups: np.ndarray, parent: np.ndarray,
                  spots: SpotModel) -> GroupBatch:
    """The groups' batch with one emitter more: every member starts at its fit, the parent and the
    new emitter (slot K) on either side of the parent's fit along its light's widest axis."""
    size = batch.counts_GRR.shape[1]
    k, rows = batch.xy_GK2.shape[1], np.arange(len(groups))
    xy = np.stack([fit.x_px[groups], fit.y_px[groups]], axis=-1)
    photons = fit.photons[groups]
    z = None if fit.z_nm is None else fit.z_nm[groups]
    per = len(spots.step)
    theta = spots.start(xy, z, photons)  # (S, K, per)
    spot_values = spots.light(theta.reshape(-1, per), size)
    spot_values = spot_values.reshape(len(groups), k, size, size)
    others = spot_values.sum(1) - spot_values[rows, parent]
    if batch.known_GRR is not None:
        others = others + batch.known_GRR[groups]
    light = np.maximum(batch.counts_GRR[groups] - fit.background[groups, None, None] - others, 0.0)
    centre = xy[rows, parent]  # (S, 2)
    sigma = np.maximum(*spots.sigmas_px(np.zeros(len(groups)) if z is None else z[rows, parent]))
    centres = np.arange(size) + 0.5
    dx = centres[None, None, :] - centre[:, 0, None, None]
    dy = centres[None, :, None] - centre[:, 1, None, None]
    near = (dx ** 2 + dy ** 2 <= (MOMENT_SIGMAS * sigma[:, None, None]) ** 2) * light * batch.weight_GRR[groups]
    total = np.maximum(near.sum((1, 2)), 1e-9)
    xx, xy_, yy = ((near * a * b).sum((1, 2)) / total for a, b in ((dx, dx), (dx, dy), (dy, dy)))
    cov = np.stack([np.stack([xx, xy_], -1), np.stack([xy_, yy], -1)], -2)  # (S, 2, 2) second moments, px²
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    axis = eigenvectors[:, :, -1]  # (S, 2) the widest direction
    # two spots a apart either side of the centre widen the light by a² along their axis; the
    # window cuts the tails, so a is at least half a sigma
    half = np.sqrt(np.maximum(eigenvalues[:, -1] - eigenvalues[:, 0], (0.5 * sigma) ** 2))
    xy_new = np.concatenate([xy, np.zeros((len(groups), 1, 2))], axis=1)
    xy_new[rows, parent] = centre - half[:, None] * axis
    xy_new[:, k] = centre + half[:, None] * axis
    photons_new = np.concatenate([photons, photons[rows, parent, None] / 2], axis=1)
    photons_new[rows, parent] /= 2
    z_new = None if z is None else np.concatenate([z, z[rows, parent, None]], axis=1)
    return GroupBatch(batch.counts_GRR[groups], batch.read_variance_GRR[groups], batch.weight_GRR[groups],
                      xy_new, photons_new, z_new, None if batch.known_GRR is None else batch.known_GRR[groups],
                      None if batch.size_G is None else batch.size_G[groups])
