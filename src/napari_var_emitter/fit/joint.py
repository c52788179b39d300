"""Groups of overlapping spots fitted jointly: the position (x, y, and z under an astigmatic PSF)
and photons of each emitter and one background per group, by the project's one Fisher scoring
loop (scoring.fisher_scoring) with the camera's noise. A batch holds groups of one number of
emitters, in ROIs of one size or padded to one (groups.cut_groups).

The PSF enters through a spot model (RoundSpots: the Gaussian of one sigma; AstigmaticSpots: the
calibration from calibrate-psf), each a pixel-integrated Gaussian that the fitting loop evaluates
(scoring.Spots); a measured (spline) PSF would be one more kind there and one more class here."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from ..psf import PSF, spot_values
from .scoring import ASTIGMATIC, CONSTANT, ROUND, FitResult, Spots, fisher_scoring

N_ITER = 25
STEP_LIMIT_PX = 0.5  # largest position change per step
Z_STEP_LIMIT_NM = 50.0  # largest z change per step
MISFIT_SIGMAS = 1.5  # an emitter's misfit is measured on the pixels this close to it


class RoundSpots:
    """The Gaussian PSF of one sigma (px): per emitter x, y (px) and photons. step, lower: (3,)
    the largest step and the lower bound of each of an emitter's parameters."""

    def __init__(self, sigma_px: float):
        self.sigma_px = float(sigma_px)
        self.step, self.lower = np.array([STEP_LIMIT_PX, STEP_LIMIT_PX, np.inf]), np.array([-1.0, -1.0, 0.0])

    def upper(self, size_G: np.ndarray) -> np.ndarray:
        """(G, 3) upper bounds of an emitter's parameters in ROIs of size_G (G,) px."""
        edge = np.asarray(size_G, np.float64)[:, None] + 1.0
        return np.concatenate([edge, edge, np.full(edge.shape, np.inf)], axis=1)

    def start(self, xy_K2: np.ndarray, z_nm_K: np.ndarray | None, photons_K: np.ndarray) -> np.ndarray:
        """(..., 3) parameters of emitters from the network's positions and photons."""
        return np.concatenate([xy_K2, photons_K[..., None]], axis=-1)

    def sigmas_px(self, z_nm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(sigma_x, sigma_y) in px of spots at z_nm (any z: round)."""
        sigma = np.full(np.shape(z_nm), self.sigma_px)
        return sigma, sigma

    def light(self, params_n3: np.ndarray, size: int, pixels=None) -> np.ndarray:
        """Expected photons (n, R*R) of spots (x, y, photons) over no background: spots()'s values,
        without derivatives (the light of held neighbours, of split candidates); at pixels =
        (rows, cols) (n, M) of each ROI alone where given."""
        sigma = np.full(len(params_n3), self.sigma_px)
        return spot_values(params_n3[:, 0], params_n3[:, 1], sigma, sigma, params_n3[:, 2], size, pixels)

    def loop_spots(self, groups: int, k: int) -> Spots:
        """The fitting loop's spots of `groups` fits of k emitters each."""
        return Spots(ROUND, np.full((groups, k, 2), self.sigma_px))


class AstigmaticSpots:
    """An astigmatic PSF calibration (psf.PSF, from calibrate-psf): per emitter x, y (px), z (nm)
    and photons. step, lower: (4,) the largest step and the lower bound of each."""

    def __init__(self, psf: PSF, pixel_size_nm: float):
        self.psf, self.pixel_size_nm = psf, float(pixel_size_nm)
        low, high = psf.z_range_nm
        self.step = np.array([STEP_LIMIT_PX, STEP_LIMIT_PX, Z_STEP_LIMIT_NM, np.inf])
        self.lower = np.array([-1.0, -1.0, low, 0.0])

    def upper(self, size_G: np.ndarray) -> np.ndarray:
        """(G, 4) upper bounds of an emitter's parameters in ROIs of size_G (G,) px."""
        edge = np.asarray(size_G, np.float64)[:, None] + 1.0
        return np.concatenate([edge, edge, np.full(edge.shape, self.psf.z_range_nm[1]), np.full(edge.shape, np.inf)],
                              axis=1)

    def start(self, xy_K2: np.ndarray, z_nm_K: np.ndarray | None, photons_K: np.ndarray) -> np.ndarray:
        """(..., 4) parameters of emitters from the network's positions, depths and photons."""
        low, high = self.psf.z_range_nm
        z = np.clip(np.zeros(photons_K.shape) if z_nm_K is None else z_nm_K, low, high)
        return np.concatenate([xy_K2, z[..., None], photons_K[..., None]], axis=-1)

    def sigmas_px(self, z_nm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(sigma_x, sigma_y) in px of spots at z_nm."""
        sigma_x, sigma_y = self.psf.sigmas_nm(np.clip(z_nm, *self.psf.z_range_nm))
        return sigma_x / self.pixel_size_nm, sigma_y / self.pixel_size_nm

    def light(self, params_n4: np.ndarray, size: int, pixels=None) -> np.ndarray:
        """Expected photons (n, R*R) of spots (x, y, z, photons) over no background: spots()'s
        values, without derivatives; at pixels = (rows, cols) (n, M) of each ROI alone where given."""
        sigma_x, sigma_y = (s / self.pixel_size_nm for s in self.psf.sigmas_nm(params_n4[:, 2]))
        return spot_values(params_n4[:, 0], params_n4[:, 1], sigma_x, sigma_y, params_n4[:, 3], size, pixels)

    def loop_spots(self, groups: int, k: int) -> Spots:
        """The fitting loop's spots of `groups` fits of k emitters each."""
        return Spots(ASTIGMATIC, psf=self.psf, pixel_size_nm=self.pixel_size_nm)


SpotModel = RoundSpots | AstigmaticSpots


@dataclasses.dataclass
class GroupBatch:
    """G groups in R x R ROIs with K emitters each. counts_GRR: photons; read_variance_GRR:
    read-noise variance in photons² (0 where there is none); weight_GRR: 1 for the pixels that
    belong to the fit; xy_GK2: starting positions (px, in the ROI: pixel (r, c) covers
    [c, c + 1) x [r, r + 1)); photons_GK: starting photons; z_nm_GK: starting depths (nm; 3-D
    only); known_GRR: expected photons from emitters outside the group, held where they are (the
    neighbours of a part of a large group), or None; size_G: each group's own ROI side (px), the
    rest of R x R padding outside its fit (weight 0), or None where every ROI is R x R (`sizes`)."""

    counts_GRR: np.ndarray
    read_variance_GRR: np.ndarray
    weight_GRR: np.ndarray
    xy_GK2: np.ndarray
    photons_GK: np.ndarray
    z_nm_GK: np.ndarray | None = None
    known_GRR: np.ndarray | None = None
    size_G: np.ndarray | None = None

    @property
    def sizes(self) -> np.ndarray:
        """(G,) each group's own ROI side (px)."""
        groups, size, _ = self.counts_GRR.shape
        return np.full(groups, size) if self.size_G is None else self.size_G

    @functools.cached_property
    def pixels(self) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
        """fit_pixels of this batch: the pixels each group is fitted on, packed (computed once)."""
        return fit_pixels(self.weight_GRR)

    def take(self, groups: np.ndarray) -> GroupBatch:
        """The batch of the groups `groups` (indexes) alone."""
        return GroupBatch(*(None if value is None else value[groups]
                            for value in (getattr(self, f.name) for f in dataclasses.fields(self))))


@dataclasses.dataclass
class JointFit:
    """Per emitter (G, K): x_px, y_px, photons, their Cramér–Rao sd (crlb_x_px, crlb_y_px,
    crlb_photons), misfit (the mean Poisson deviance of the pixels within MISFIT_SIGMAS of each:
    about 1 when the model explains them, more when light is missing there, e.g. from a
    neighbour the network merged into it); z_nm and crlb_z_nm under an astigmatic PSF, else
    None; per group (G,): background (photons/px), loglik, converged."""

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
    z_nm: np.ndarray | None = None
    crlb_z_nm: np.ndarray | None = None


def fit_groups(batch: GroupBatch, spots: SpotModel, excess: float = 1.0, n_iter: int = N_ITER) -> JointFit:
    """Jointly fit every group of `batch` (see GroupBatch) under the PSF of `spots`; `excess` is
    the EM excess noise factor (2 for an EMCCD with gain, else 1)."""
    groups, size, _ = batch.counts_GRR.shape
    k, per = batch.xy_GK2.shape[1], len(spots.step)
    counts = batch.counts_GRR.reshape(groups, -1)
    weight = batch.weight_GRR.reshape(groups, -1)
    background = _background_start(counts if batch.known_GRR is None else counts - batch.known_GRR.reshape(groups, -1),
                                   weight)
    photons = np.maximum(batch.photons_GK, 1.0)
    theta = np.concatenate([spots.start(batch.xy_GK2, batch.z_nm_GK, photons).reshape(groups, per * k),
                            background[:, None]], axis=1)
    result = fit_from(batch, spots, theta, None, excess, n_iter)
    params = result.theta[:, :-1].reshape(groups, k, per)
    sd = np.sqrt(np.maximum(result.variance[:, :-1], 0)).reshape(groups, k, per)
    depth = per == 4
    width = np.maximum(*spots.sigmas_px(params[..., 2] if depth else np.zeros((groups, k))))  # (G, K) px
    (rows, cols), fitted = batch.pixels
    misfit = misfit_near(result.deviance_NK, rows, cols, fitted, params[..., 0], params[..., 1], width)
    return JointFit(params[..., 0], params[..., 1], params[..., -1], sd[..., 0], sd[..., 1], sd[..., -1],
                    result.theta[:, -1], result.loglik, result.converged, misfit,
                    params[..., 2] if depth else None, sd[..., 2] if depth else None)


def misfit_near(deviance_NM: np.ndarray, rows_NM: np.ndarray, cols_NM: np.ndarray, fitted_NM: np.ndarray,
                x_px_NK: np.ndarray, y_px_NK: np.ndarray, width_px_NK: np.ndarray) -> np.ndarray:
    """(N, K) the misfit of each of the K emitters of N fits: the mean Poisson deviance (about 1 where
    the model holds) of the fit's M pixels (rows, cols; fitted 1, padding 0) that lie within
    MISFIT_SIGMAS times its width (px) of it."""
    dx, dy = cols_NM[:, None, :] + 0.5 - x_px_NK[..., None], rows_NM[:, None, :] + 0.5 - y_px_NK[..., None]
    squared = dx ** 2 + dy ** 2
    near = (squared <= (MISFIT_SIGMAS * width_px_NK[..., None]) ** 2) * fitted_NM[:, None, :]  # (N, K, M)
    return (near * deviance_NM[:, None, :]).sum(-1) / np.maximum(near.sum(-1), 1.0)


def misfit_scale(misfit):
    """What a fit's Cramér–Rao bound is multiplied by to state its uncertainty: an emitter whose
    model leaves light unexplained around it (a neighbour missed or merged) is less certain than
    its bound, by the square root of its misfit (at least 1)."""
    return np.sqrt(np.maximum(misfit, 1.0))


def fit_from(batch: GroupBatch, spots, theta_GP: np.ndarray, fixed_GP: np.ndarray | None,
             excess: float, n_iter: int) -> FitResult:
    """fisher_scoring of the groups of `batch` (their pixels, read noise and held light) from
    theta_GP = (emitter 1's parameters under `spots`, ..., emitter K's, background), holding
    fixed_GP (None: nothing held); spots: any spot model of RoundSpots' form (step, lower, upper,
    loop_spots)."""
    groups, size, _ = batch.counts_GRR.shape
    k = (theta_GP.shape[1] - 1) // len(spots.step)
    limits = (np.r_[np.tile(spots.step, k), np.inf], np.r_[np.tile(spots.lower, k), 1e-3],
              np.column_stack([np.tile(spots.upper(batch.sizes), k), np.full(groups, np.inf)]))
    (rows, cols), fitted = batch.pixels
    at = (np.arange(groups)[:, None], rows, cols)
    return fisher_scoring(batch.counts_GRR[at], theta_GP, spots.loop_spots(groups, k), limits, n_iter, size,
                          pixels=(rows, cols), read_variance_NK=batch.read_variance_GRR[at], excess=excess,
                          weight_NK=fitted, known_NK=None if batch.known_GRR is None else batch.known_GRR[at],
                          n_terms=CONSTANT, fixed_NP=fixed_GP)


def fit_pixels(weight_GRR: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """The pixels each group is fitted on (weight > 0), packed: ((rows, cols), each (G, M) int,
    M the most of any group), and (G, M) 1 for those, 0 for the padding after a group's last.
    The fit's work goes with M, not the ROI's R*R (a third to a half of it for most groups)."""
    inside = weight_GRR.reshape(len(weight_GRR), -1) > 0
    n_px = max(int(inside.sum(1).max(initial=0)), 1)
    order = np.argsort(~inside, axis=1, kind="stable")[:, :n_px]  # each group's pixels first, in ROI order
    fitted = np.take_along_axis(inside, order, 1).astype(np.float64)
    size = weight_GRR.shape[-1]
    return (order // size, order % size), fitted


def _background_start(counts_GK: np.ndarray, weight_GK: np.ndarray) -> np.ndarray:
    """The 20th percentile of each group's fitted pixels (photons/px; linear between ranks, as
    np.percentile), at least 0.1; 1 for a group without pixels."""
    fitted = weight_GK > 0
    ordered = np.sort(np.where(fitted, np.nan_to_num(counts_GK), np.inf), axis=1)  # the fitted pixels first
    last = np.maximum(fitted.sum(1) - 1, 0)
    rank = 0.2 * last
    low, rows = np.floor(rank).astype(int), np.arange(len(ordered))
    high = np.minimum(low + 1, last)
    start = ordered[rows, low] + (rank - low) * (ordered[rows, high] - ordered[rows, low])
    return np.maximum(np.where(fitted.any(1), start, 1.0), 0.1)
