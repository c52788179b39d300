"""Precision and resolution from the localisations alone.

NeNA (Endesfelder et al. 2014): a fluorophore on for several frames is localised in adjacent
frames; the distance d from each localisation to its nearest neighbour in the next frame is,
for those pairs, Rayleigh-distributed with scale √2·σ. Fitted by maximum likelihood as a
mixture of that and a linear term (neighbours that are other fluorophores) on [0, d_max].

FRC (Nieuwenhuizen et al. 2013): the localisations split into two halves (random blocks of
frames, so one blink does not land in both), rendered as histograms, Tukey-windowed; the
Fourier ring correlation of the two images, averaged over random splits; the resolution is
1/q where the curve first drops below 1/7.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from scipy.ndimage import uniform_filter1d
from scipy.optimize import minimize
from scipy.signal.windows import tukey
from scipy.spatial import cKDTree

from ..errors import InputError
from .table_checks import check_table

FRC_THRESHOLD = 1 / 7
MAX_FRC_PX = 2048  # FRC images are at most this wide; the pixel grows for wide fields
# an FRC whose splits' crossings spread more than this share of its value is said not to be settled
# (trying the plugin: "FRC 33.4 nm (its splits spread ± 83 nm)" on 100 frames of sparse data)
UNSETTLED_FRC_SPREAD = 0.5


@dataclasses.dataclass(frozen=True)
class NeNA:
    """Precision σ (nm, per axis) and its standard error (nm; a few neighbour pairs give a wide
    one), the distances it was fitted to, and the fitted mixture."""

    precision_nm: float
    distances_nm: np.ndarray
    d_max_nm: float
    rayleigh_fraction: float
    precision_sd_nm: float

    def density(self, d_nm: np.ndarray) -> np.ndarray:
        """The fitted probability density (1/nm) of d on [0, d_max]."""
        return _mixture(np.asarray(d_nm, float), self.precision_nm, self.rayleigh_fraction, self.d_max_nm)


def nena(table: pd.DataFrame, halvings: int = 16, seed: int = 0) -> NeNA:
    """NeNA precision of `table` (needs localisations in adjacent frames), and its standard error:
    the spread of the estimates from `halvings` random halves of the movie's frame blocks (as the FRC
    splits it, so a blink stays in one half; a half and its complement are a delete-half jackknife,
    whose spread is the whole table's standard error). Pairs of one blink share its positions, so
    they are not independent: the likelihood's own curvature stated half the spread of the estimate
    over simulated tables."""
    check_table(table, ("frame", "x_nm", "y_nm"), "NeNA", min_rows=2, min_frames=2)
    if "n_merged" in table and (table["n_merged"] > 1).any():  # a merged table said 863 nm for 8.7
        raise InputError("NeNA needs the localisations before merging: this table's rows are merged blinks (its "
                         "detections column), which leave no neighbour in the next frame but other molecules")
    distances, frames = _adjacent_frame_distances(table)
    if distances.size < 20:
        raise InputError(f"NeNA: only {distances.size} localisations have a neighbour in the next frame "
                         "(at least 20 are needed: a movie with blinks that last more than one frame)")
    close = distances[distances < np.quantile(distances, 0.5)]
    guess = max(float(np.median(close)) / 1.665, 0.5)  # median of a Rayleigh of scale √2σ is 1.665σ
    d_max = max(100.0, 8 * guess)
    inside = distances <= d_max
    d, frames = distances[inside], frames[inside]
    sigma, fraction = _fit_mixture(d, d_max, [(guess, f) for f in (0.3, 0.7, 0.95)])
    block = frames // _block_frames(int(table["frame"].max()) + 1)
    rng = np.random.default_rng(seed)
    halves = []
    for _ in range(halvings):
        half = rng.integers(0, 2, int(block.max()) + 1)[block].astype(bool)
        if half.sum() >= 10:
            halves.append(_fit_mixture(d[half], d_max, [(sigma, fraction)])[0])
    sd = float(np.std(halves, ddof=1)) if len(halves) >= 2 else np.nan
    return NeNA(sigma, d, d_max, fraction, sd)


def _fit_mixture(d: np.ndarray, d_max: float, starts: list[tuple[float, float]]) -> tuple[float, float]:
    """(σ, Rayleigh fraction) of the mixture fitted to the distances d (nm) on [0, d_max] by maximum likelihood,
    the best of the fits from `starts` ((σ, fraction) each; from a fraction of one half alone, the simplex's
    first step was too small to leave it and some fits stopped far from the maximum)."""
    def negative_log_likelihood(params) -> float:
        sigma, fraction = np.exp(params[0]), 1 / (1 + np.exp(-params[1]))
        return -float(np.sum(np.log(_mixture(d, sigma, fraction, d_max) + 1e-300)))

    fits = []
    for sigma, fraction in starts:
        x0 = np.array([np.log(sigma), np.log(fraction / (1 - fraction))])
        simplex = np.array([x0, x0 + [0.3, 0.0], x0 + [0.0, 1.0]])
        fits.append(minimize(negative_log_likelihood, x0, method="Nelder-Mead",
                             options={"xatol": 1e-6, "fatol": 1e-6, "maxfev": 4000, "initial_simplex": simplex}))
    best = min(fits, key=lambda fit: fit.fun)
    return float(np.exp(best.x[0])), float(1 / (1 + np.exp(-best.x[1])))


def _block_frames(n_frames: int) -> int:
    """The frames of one block that a random halving keeps together: 50, fewer for a movie under 1,000
    frames, so that there are at least 20 blocks."""
    return max(1, min(50, n_frames // 20))


def _mixture(d: np.ndarray, sigma: float, fraction: float, d_max: float) -> np.ndarray:
    rayleigh = d / (2 * sigma**2) * np.exp(-d**2 / (4 * sigma**2))
    rayleigh /= 1 - np.exp(-d_max**2 / (4 * sigma**2))  # truncated at d_max
    return fraction * rayleigh + (1 - fraction) * 2 * d / d_max**2


def _adjacent_frame_distances(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Distance (nm) from each localisation to its nearest neighbour in the next frame, and the
    localisation's frame."""
    frames = table["frame"].to_numpy()
    xy = table[["x_nm", "y_nm"]].to_numpy()
    order = np.argsort(frames, kind="stable")
    frames, xy = frames[order], xy[order]
    unique, starts = np.unique(frames, return_index=True)
    bounds = dict(zip(unique, zip(starts, np.r_[starts[1:], len(frames)])))
    out, of = [], []
    for frame in unique:
        nxt = bounds.get(frame + 1)
        if nxt is None:
            continue
        begin, end = bounds[frame]
        distance, _ = cKDTree(xy[nxt[0]:nxt[1]]).query(xy[begin:end])
        out.append(distance)
        of.append(frames[begin:end])
    return (np.concatenate(out), np.concatenate(of)) if out else (np.empty(0), np.empty(0, int))


@dataclasses.dataclass(frozen=True)
class FRC:
    """The Fourier ring correlation curve against spatial frequency (1/nm), the resolution (nm)
    where it first drops below 1/7 (nan when it never does), and how far that of each random
    split into halves lies from it (the standard deviation over the splits, nm; nan with fewer
    than two that cross: few localisations give a wide one)."""

    frequency_per_nm: np.ndarray
    correlation: np.ndarray
    resolution_nm: float
    pixel_nm: float
    resolution_sd_nm: float

    @property
    def settled(self) -> bool:
        """Whether the resolution is a figure: the curve crosses 1/7, and its splits' crossings spread
        no more than UNSETTLED_FRC_SPREAD of it (too few localisations make them disagree)."""
        return bool(np.isfinite(self.resolution_nm)
                    and not self.resolution_sd_nm > UNSETTLED_FRC_SPREAD * self.resolution_nm)


def frc(table: pd.DataFrame, pixel_nm: float = 5.0, repeats: int = 5, block_frames: int | None = None,
        seed: int = 0) -> FRC:
    """FRC resolution of `table`: halves from random blocks of `block_frames` frames (None:
    50, fewer when the movie has under 1,000 frames, so there are at least 20 blocks), images
    at `pixel_nm` (coarser if the field would be wider than MAX_FRC_PX), averaged over
    `repeats` random splits."""
    check_table(table, ("frame", "x_nm", "y_nm"), "FRC", min_rows=10, min_frames=2)
    if not pixel_nm > 0 or repeats < 1:
        raise InputError("FRC: the pixel size must be > 0 nm and repeats >= 1")
    frames = table["frame"].to_numpy()
    n_frames = int(frames.max()) + 1
    block_frames = block_frames or _block_frames(n_frames)
    x, y = table["x_nm"].to_numpy(), table["y_nm"].to_numpy()
    extent = max(np.ptp(x), np.ptp(y), 1.0)
    pixel_nm = max(pixel_nm, extent / MAX_FRC_PX)
    side = int(np.ceil(extent / pixel_nm)) + 1
    window = np.outer(tukey(side, 0.25), tukey(side, 0.25))
    ring = _ring_index(side)
    n_rings = side // 2
    rng = np.random.default_rng(seed)
    block = frames // block_frames
    curves = []
    for _ in range(repeats):
        half = rng.integers(0, 2, int(block.max()) + 1)[block].astype(bool)
        if half.all() or not half.any():
            continue
        spectra = []
        for chosen in (half, ~half):
            image, _, _ = np.histogram2d(y[chosen] - y.min(), x[chosen] - x.min(), bins=side,
                                         range=((0, side * pixel_nm), (0, side * pixel_nm)))
            spectra.append(np.fft.rfft2(image * window))
        cross = np.bincount(ring, np.real(spectra[0] * np.conj(spectra[1])).ravel(), n_rings + 1)
        power = [np.bincount(ring, (np.abs(s) ** 2).ravel(), n_rings + 1) for s in spectra]
        curves.append(cross / np.sqrt(np.maximum(power[0] * power[1], 1e-300)))
    if not curves:
        raise InputError("FRC: the localisations lie in too few frame blocks to split in two halves")

    def smoothed(curve: np.ndarray) -> np.ndarray:
        return uniform_filter1d(curve[:n_rings], 3, mode="nearest")

    correlation = smoothed(np.mean(curves, axis=0))
    frequency = np.arange(n_rings) / (side * pixel_nm)
    each = np.array([_crossing(frequency, smoothed(curve)) for curve in curves])
    spread = float(np.std(each[np.isfinite(each)], ddof=1)) if np.isfinite(each).sum() >= 2 else np.nan
    return FRC(frequency, correlation, _crossing(frequency, correlation), pixel_nm, spread)


def nena_text(precision: NeNA) -> str:
    """'9.97 ± 0.12 nm' (the standard error to two figures, the value to its last one)."""
    sd = precision.precision_sd_nm
    if not np.isfinite(sd) or sd <= 0:
        return f"{precision.precision_nm:.1f} nm"
    decimals = max(0, 1 - int(np.floor(np.log10(sd))))
    return f"{precision.precision_nm:.{decimals}f} ± {sd:.{decimals}f} nm"


def frc_text(curve: FRC) -> str:
    """'31.6 nm (its splits spread ± 0.88 nm)': the spread is of single splits' crossings, not an error of the
    value ('never below 1/7' where the curve never crosses; 'not settled' where the splits spread more than
    UNSETTLED_FRC_SPREAD of the value: too few localisations for an FRC)."""
    value, spread = curve.resolution_nm, curve.resolution_sd_nm
    if not np.isfinite(value):
        return "never below 1/7"
    if not curve.settled:
        return (f"not settled: its splits spread ± {spread:.2g} nm about {value:.0f} nm (too few localisations "
                "for an FRC)")
    return f"{value:.1f} nm" + (f" (its splits spread ± {spread:.2g} nm)" if np.isfinite(spread) else "")


def _ring_index(side: int) -> np.ndarray:
    """Ring number (radius in frequency pixels, rounded) of each coefficient of an rfft2 of (side, side)."""
    fy = np.fft.fftfreq(side) * side
    fx = np.fft.rfftfreq(side) * side
    radius = np.hypot(fy[:, None], fx[None, :])
    return np.minimum(np.round(radius).astype(np.int64), side // 2).ravel()


def _crossing(frequency: np.ndarray, correlation: np.ndarray) -> float:
    """1 / the first frequency (past the zero ring) where the curve falls below the threshold,
    interpolated linearly between rings."""
    below = np.flatnonzero(correlation[1:] < FRC_THRESHOLD) + 1
    if not below.size:
        return float("nan")
    k = below[0]
    c0, c1 = correlation[k - 1], correlation[k]
    q = frequency[k - 1] + (c0 - FRC_THRESHOLD) / (c0 - c1) * (frequency[k] - frequency[k - 1])
    return float(1 / q) if q > 0 else float("nan")
