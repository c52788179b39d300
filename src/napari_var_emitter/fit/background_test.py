"""The test against "background only": is there a spot at a localisation, or only background?

On the pixels within WINDOW_SIGMAS PSF sigmas of a localisation, two fits under the camera's
noise (the project's one fitting loop, scoring.spot_against_background): a background that varies
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

import numpy as np
from scipy import stats

from ..psf import spot_values
from .groups import frame_pairs
from .scoring import spot_against_background

WINDOW_SIGMAS = 4.0
N_ITER = 10
NEIGHBOUR_SIGNIFICANCE = 5.0  # neighbours at least this significant alone are in the second pass's model
BACKGROUND_STEP = 1e4  # photons/px: the largest step of the background's terms
PER_PASS = 2000  # neighbour pairs rendered at a time: memory stays bounded
# below this share of background-only localisations every one is kept (discoveries; chosen on validation stacks,
# seeds 12,000,000+ and 12,100,000+: 0-0.4 % of the network's detections on flat backgrounds at 0.1-2 /µm², 40-86 %
# on 4-10x structured ones at 0.1-1 /µm²)
PHANTOM_SHARE = 0.05
CLEAR_SIGMAS = 2.0
# behind a network that saw the frames beside, a detection below this probability must also stand
# this many sd above background only in its own frame (seen_in_own_frame). Chosen on validation
# stacks (seeds 12,001,100-113 and 12,001,300-313: 128x128 px, 20 frames, 0.1-2 /µm², sCMOS and
# EMCCD; 12,100,700-701: 160x160 px, 50 frames, flat and 4-10x structured, 0.1 and 1 /µm²), the
# 20,000-step model of configs/cpu_2d_context.json: of the pairs within 0.2 points of the best mean
# Jaccard (91.65 %, at 2 sd and 0.6-0.8), the one with the fewest detections > 250 nm from every
# emitter of their frame: 91.48 % and 5.3 per 2,000 detections, against 90.91 % and 32.7 without
UNSURE_PROBABILITY = 0.7
OWN_FRAME_SIGMAS = 2.5


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


def seen_in_own_frame(significance_N: np.ndarray, probability_N: np.ndarray) -> np.ndarray:
    """(N,) the detections of a network that saw the frames beside each frame that are a spot in
    their own frame: those it is sure of (probability >= UNSURE_PROBABILITY) and those at least
    OWN_FRAME_SIGMAS above background only. Such a network also reports, less sure, molecules that
    are on in the frame before or after and not in this one (on validation stacks nearly every
    detection far from the frame's emitters lay at one of the next or previous frame's), and
    there the frame holds background only."""
    return (np.asarray(probability_N) >= UNSURE_PROBABILITY) | (np.asarray(significance_N) >= OWN_FRAME_SIGMAS)


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
    alone, photons_alone = windows.significance(photons_THW, read_variance_HW, None, excess)
    source, target = windows.neighbour_pairs()
    brighter = (alone[source] > alone[target]) & (alone[source] >= NEIGHBOUR_SIGNIFICANCE)
    source, target = source[brighter], target[brighter]
    beside = np.unique(target)  # the rest have no such neighbour: their first test stands
    index = np.full(n, -1)
    index[beside] = np.arange(len(beside))
    neighbours = np.zeros((len(beside), windows.size ** 2))
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
    tested[beside] = windows.significance(photons_THW, read_variance_HW, neighbours, excess, beside)[0]
    return tested, np.isin(np.arange(n), beside)


class _Windows:
    """The (2 half + 1)² pixels around each of N localisations (within WINDOW_SIGMAS, kept inside
    the frame): their corners, and the localisations' frames, positions and PSF sigmas (px)."""

    def __init__(self, shape_THW: tuple[int, int, int], frame_N, x_px_N, y_px_N, sigma_x_px_N, sigma_y_px_N):
        _, height, width = shape_THW
        self.sigma_x, self.sigma_y = np.asarray(sigma_x_px_N, np.float64), np.asarray(sigma_y_px_N, np.float64)
        self.widest = float(max(self.sigma_x.max(), self.sigma_y.max()))
        self.half = int(np.ceil(WINDOW_SIGMAS * self.widest))
        self.size = size = min(2 * self.half + 1, height, width)
        self.frame, self.x, self.y = np.asarray(frame_N, int), x_px_N, y_px_N
        self.row0 = np.clip(np.floor(y_px_N).astype(int) - self.half, 0, height - size)
        self.col0 = np.clip(np.floor(x_px_N).astype(int) - self.half, 0, width - size)

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

    def significance(self, photons_THW: np.ndarray, read_variance_HW: np.ndarray | float, known: np.ndarray | None,
                     excess: float, windows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(M,) sqrt of twice the log-likelihood ratio of a spot (photons >= 0) at the localisation
        over a quadratic background against the background alone, and (M,) those photons, in
        `windows` (indexes; all by default); `known` (M, K) expected photons of other spots held
        fixed in both (None: none)."""
        w = np.arange(len(self.frame)) if windows is None else windows
        ratio, photons = spot_against_background(photons_THW, read_variance_HW, self.frame[w], self.row0[w],
                                                 self.col0[w], self.x[w], self.y[w], self.sigma_x[w], self.sigma_y[w],
                                                 self.size, known, excess, N_ITER, BACKGROUND_STEP)
        return np.sqrt(np.maximum(ratio, 0.0)), photons
