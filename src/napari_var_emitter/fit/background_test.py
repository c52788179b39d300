"""The test against "background only": is there a spot at a localisation, or only background?

On the pixels within WINDOW_SIGMAS PSF sigmas of a localisation, two fits under the camera's
noise (the project's one fitting loop, scoring.fisher_scoring): a background that varies
smoothly (a quadratic surface: out-of-focus light and autofluorescence 1 µm wide and more look
like that over a window) plus a spot at the localisation's position, against that background
alone. The likelihood ratio gives the spot's significance in standard deviations,
sqrt(2 (l(spot) - l(background))), 0 where the best photons are 0. A phantom on a bright patch
of background scores about 0-3; a real spot of a few hundred photons far more.

Which to keep (discoveries): where nearly every localisation is a clear spot (Storey's estimate
of the share that are background only, from how many stand less than CLEAR_SIGMAS above it, is
under PHANTOM_SHARE), all of them: the network is on data it knows, and the few it finds under
that are mostly real dim emitters. Otherwise, in each frame, the Benjamini–Hochberg procedure
over the one-sided p-values of those significances at a false-discovery rate q. Where a frame
holds many phantoms (a network misled by out-of-focus light) its threshold rises; where most
detections are clear spots, it lets dim ones through. The network chose each position because
it looks like a spot, so the p-values are optimistic: q is chosen on validation stacks, not read
as a rate."""

from __future__ import annotations

import functools

import numpy as np
from scipy import stats

from ..psf import spot_values
from .groups import frame_pairs
from .scoring import QUADRATIC, ROUND, Spots, fisher_scoring

WINDOW_SIGMAS = 4.0
N_ITER = 10
NEIGHBOUR_SIGNIFICANCE = 5.0  # neighbours at least this significant alone are in the second pass's model
BACKGROUND_STEP = 1e4  # photons/px: the largest step of the background's terms
PER_PASS = 2000  # windows (or neighbour pairs) fitted or rendered at a time: memory stays bounded
# below this share of background-only localisations every one is kept (discoveries; chosen on validation stacks,
# seeds 12,000,000+ and 12,100,000+: 0-0.4 % of the network's detections on flat backgrounds at 0.1-2 /µm², 40-86 %
# on 4-10x structured ones at 0.1-1 /µm²)
PHANTOM_SHARE = 0.05
CLEAR_SIGMAS = 2.0


def discoveries(significance_N: np.ndarray, frame_N: np.ndarray, q: float,
                counted_N: np.ndarray | None = None) -> np.ndarray:
    """(N,) which localisations to keep: all where under PHANTOM_SHARE of the `counted_N` ones (all
    by default) are background only, else per frame Benjamini–Hochberg at false-discovery rate q
    over p = P(N(0, 1) > significance) (module docstring)."""
    n = len(significance_N)
    if n == 0:
        return np.zeros(0, bool)
    counted = significance_N if counted_N is None else significance_N[counted_N]
    if not len(counted) or np.mean(counted < CLEAR_SIGMAS) / stats.norm.cdf(CLEAR_SIGMAS) < PHANTOM_SHARE:
        return np.ones(n, bool)
    p = stats.norm.sf(significance_N)
    order = np.lexsort((p, frame_N))
    frames = np.asarray(frame_N)[order]
    starts = np.flatnonzero(np.r_[True, frames[1:] != frames[:-1]])
    counts = np.diff(np.r_[starts, n])
    rank = np.arange(n) - np.repeat(starts, counts) + 1
    passed = np.where(p[order] <= q * rank / np.repeat(counts, counts), rank, 0)
    keep = np.zeros(n, bool)
    keep[order] = rank <= np.repeat(np.maximum.reduceat(passed, starts), counts)
    return keep


def significance(photons_THW: np.ndarray, read_variance_HW: np.ndarray | float, excess: float,
                 frame_N: np.ndarray, x_px_N: np.ndarray, y_px_N: np.ndarray, photons_N: np.ndarray,
                 sigma_x_px_N: np.ndarray, sigma_y_px_N: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) each localisation's significance against background only, in standard deviations
    (module docstring), and (N,) whether it was tested beside such neighbours; frame_N indexes
    photons_THW, positions and PSF sigmas in px of the frame, photons_N each localisation's
    photons. Tested twice: alone; then with the spots of the localisations nearby that were more
    significant and at least NEIGHBOUR_SIGNIFICANCE alone in the model (each with the smaller of
    photons_N and the photons fitted alone), so that a phantom beside a real emitter is not
    credited with its light."""
    n = len(frame_N)
    if n == 0:
        return np.zeros(0), np.zeros(0, bool)
    windows = _Windows(photons_THW.shape, frame_N, x_px_N, y_px_N, sigma_x_px_N, sigma_y_px_N)
    counts, variance = windows.cut(photons_THW), windows.cut(np.broadcast_to(read_variance_HW, photons_THW.shape[1:]))
    alone, photons_alone = windows.significance(counts, np.zeros_like(counts), variance, excess)
    source, target = windows.neighbour_pairs()
    brighter = (alone[source] > alone[target]) & (alone[source] >= NEIGHBOUR_SIGNIFICANCE)
    source, target = source[brighter], target[brighter]
    beside = np.unique(target)  # the rest have no such neighbour: their first test stands
    index = np.full(n, -1)
    index[beside] = np.arange(len(beside))
    neighbours = np.zeros((len(beside), counts.shape[1]))
    photons = np.minimum(photons_N, photons_alone)
    order = np.argsort(index[target], kind="stable")  # each window's neighbours one after the other
    source, target = source[order], target[order]
    for part in range(0, len(source), PER_PASS):  # a bounded slice of pairs at a time
        pairs = slice(part, part + PER_PASS)
        rows = index[target[pairs]]
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        neighbours[rows[starts]] += np.add.reduceat(windows.spots(target[pairs], source[pairs],
                                                                  photons[source[pairs]]), starts, axis=0)
    tested = alone.copy()
    tested[beside] = windows.significance(counts[beside], neighbours, variance[beside], excess, beside)[0]
    return tested, np.isin(np.arange(n), beside)


class _Windows:
    """The (2 half + 1)² pixels around each of N localisations (within WINDOW_SIGMAS, kept inside
    the frame), the unit spot at each position there (N, K), and the quadratic background's
    terms (K, 6) over the window."""

    def __init__(self, shape_THW: tuple[int, int, int], frame_N, x_px_N, y_px_N, sigma_x_px_N, sigma_y_px_N):
        n, (_, height, width) = len(frame_N), shape_THW
        self.sigma_x, self.sigma_y = np.asarray(sigma_x_px_N, np.float64), np.asarray(sigma_y_px_N, np.float64)
        self.widest = float(max(self.sigma_x.max(), self.sigma_y.max()))
        self.half = int(np.ceil(WINDOW_SIGMAS * self.widest))
        self.size = size = min(2 * self.half + 1, height, width)
        self.frame, self.x, self.y = np.asarray(frame_N, int), x_px_N, y_px_N
        self.row0 = np.clip(np.floor(y_px_N).astype(int) - self.half, 0, height - size)
        self.col0 = np.clip(np.floor(x_px_N).astype(int) - self.half, 0, width - size)
        self.shape = self.spots(np.arange(n), np.arange(n), np.ones(n))
        v, u = (np.mgrid[:size, :size].reshape(2, -1) + 0.5) / size - 0.5
        self.terms = np.column_stack([np.ones_like(u), u, v, u * u, v * v, u * v])

    def cut(self, image: np.ndarray) -> np.ndarray:
        """(N, K) the windows' pixels of a (T, H, W) stack, or of an (H, W) image in every frame."""
        inside = np.arange(self.size)
        rows = np.repeat(self.row0[:, None] + inside, self.size, axis=1)
        cols = np.tile(self.col0[:, None] + inside, (1, self.size))
        return np.asarray(image[rows, cols] if image.ndim == 2 else image[self.frame[:, None], rows, cols], np.float64)

    def spots(self, windows: np.ndarray, of: np.ndarray, photons: np.ndarray) -> np.ndarray:
        """(M, K) expected photons of the localisations `of`'s spots in the windows `windows`."""
        if not len(windows):
            return np.zeros((0, self.size ** 2))
        return spot_values(self.x[of] - self.col0[windows], self.y[of] - self.row0[windows], self.sigma_x[of],
                           self.sigma_y[of], photons, self.size)

    def neighbour_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(source, target): every ordered pair of localisations of one frame whose spot reaches
        the other's window (within its half-width plus 3 sigmas)."""
        pairs = frame_pairs(self.frame, self.x, self.y, (self.half + 3 * self.widest) * np.sqrt(2))
        return np.r_[pairs[:, 0], pairs[:, 1]], np.r_[pairs[:, 1], pairs[:, 0]]

    def significance(self, counts: np.ndarray, known: np.ndarray, variance: np.ndarray, excess: float,
                     windows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(M,) sqrt of twice the log-likelihood ratio of a spot (photons >= 0) over a quadratic
        background against the background alone, and (M,) those photons, in `windows` (all by
        default); counts, variance and `known` (expected photons of other spots, held fixed in
        both) are (M, K). PER_PASS windows at a time."""
        windows = np.arange(len(counts)) if windows is None else windows
        ratio, photons = np.zeros(len(counts)), np.zeros(len(counts))
        for start in range(0, len(counts), PER_PASS):
            rows = slice(start, start + PER_PASS)
            ratio[rows], photons[rows] = self._likelihood_ratio(counts[rows], known[rows], variance[rows],
                                                                windows[rows], excess)
        return np.sqrt(np.maximum(ratio, 0.0)), photons

    def _likelihood_ratio(self, counts, known, variance, windows, excess: float) -> tuple[np.ndarray, np.ndarray]:
        """(n,) twice the log-likelihood ratio and the spot's photons (module docstring) in the
        windows `windows` (indexes). The spot stays at the localisation (x, y held): the model is
        linear in (photons, the background's terms)."""
        n = len(counts)
        spots = Spots(ROUND, np.stack([self.sigma_x[windows], self.sigma_y[windows]], axis=-1)[:, None, :])
        theta = np.zeros((n, 3 + QUADRATIC))
        theta[:, 0], theta[:, 1] = self.x[windows] - self.col0[windows], self.y[windows] - self.row0[windows]
        # both fits start from weighted least squares (the model is linear), a step or two from the optimum
        weight = 1.0 / np.maximum(counts + variance, 1.0)
        theta[:, 3:] = _least_squares(None, self.terms, counts - known, weight)
        # photons settle relative to their value; the background's terms (near 0) within BACKGROUND_STEP * 1e-7
        limits = (np.r_[np.inf, np.inf, np.inf, np.full(QUADRATIC, BACKGROUND_STEP)],
                  np.r_[-np.inf, -np.inf, 0.0, np.full(QUADRATIC, -np.inf)], np.full(3 + QUADRATIC, np.inf))
        held = np.zeros((n, 3 + QUADRATIC), bool)
        held[:, :3] = True  # the background alone: no spot
        fit = functools.partial(fisher_scoring, counts, spots=spots, limits=limits, n_iter=N_ITER, size=self.size,
                                read_variance_NK=variance, excess=excess, known_NK=known, n_terms=QUADRATIC,
                                bounds=False)
        background = fit(theta_NP=theta, fixed_NP=held)
        theta[:, 2:] = _least_squares(self.shape[windows], self.terms, counts - known, weight)
        theta[:, 2] = np.maximum(theta[:, 2], 1.0)
        held[:, 2] = False
        spot = fit(theta_NP=theta, fixed_NP=held)
        return 2 * (spot.loglik - background.loglik), spot.theta[:, 2]


def _least_squares(spot_NK: np.ndarray | None, terms_KQ: np.ndarray, target_NK: np.ndarray,
                   weight_NK: np.ndarray) -> np.ndarray:
    """(N, Q) or with a spot (N, 1 + Q): the weighted least-squares photons of the spot of unit
    shape spot_NK (None: no spot) and the background's terms, per row."""
    q = terms_KQ.shape[1]
    outer = (terms_KQ[:, :, None] * terms_KQ[:, None, :]).reshape(len(terms_KQ), -1)
    normal = (weight_NK @ outer).reshape(len(weight_NK), q, q)
    projected = (weight_NK * target_NK) @ terms_KQ
    if spot_NK is not None:
        weighted = weight_NK * spot_NK
        cross = weighted @ terms_KQ
        normal = np.block([[(weighted * spot_NK).sum(1)[:, None, None], cross[:, None, :]],
                           [cross[:, :, None], normal]])
        projected = np.column_stack([(weighted * target_NK).sum(1), projected])
    normal += 1e-9 * np.eye(normal.shape[1])
    return np.linalg.solve(normal, projected[..., None])[..., 0]
