"""Stage drift: estimated by redundant cross-correlation (RCC, Wang et al. 2014) of images
rendered from frame segments, or from fiducials the user marks; applied by subtracting it.

A drift trajectory is (frame, dx_nm, dy_nm) for every frame 0..T-1: where the sample sat in that
frame relative to its mean position over the movie (the trajectory's mean is 0: a global offset
cannot be measured, and anchoring at the mean adds the least noise), so corrected = localised −
drift.
"""

from __future__ import annotations

import dataclasses
import os
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.interpolate import CubicSpline
from scipy.ndimage import gaussian_filter

from ..errors import InputError
from ..io.atomic import atomic_path
from .render import DEFAULT_SIGMA_NM
from .table_checks import check_table

AUTO_SEGMENTS = 20  # the automatic segment length cuts the movie into this many segments ...
AUTO_LOCS_PER_SEGMENT = 2000  # ... unless that leaves fewer localisations than this in each
MAX_IMAGE_PX = 2048  # segment images are at most this wide; the render pixel grows for wide fields
MIN_LOCS_PER_SEGMENT = 50
MIN_SEGMENTS = 4  # fewer: too weak a check (3 segments: 3 pairs for 2 drifts; benchmarks/drift_reliability.py)
MAX_DISAGREEMENT_NM = 5.0  # RCC refuses segments that disagree by more (benchmarks/drift_reliability.py)


@dataclasses.dataclass(frozen=True)
class Drift:
    """Drift per frame (T, 2) in nm, and the points it was interpolated from: per-segment (or
    per-frame for fiducials) estimates at `anchor_frames` (S,) with `anchor_nm_S2`. RCC also gives
    its segments' `segment_edges` (S + 1,) frames and `disagreement_nm`: how far the pairwise shifts
    of the segment that agrees least scatter about the solved drift (per axis, 1.4826 × the median
    |misfit| of its S − 1 pairs, widened by √(P / (P − S + 1)) for the S − 1 drifts the P pairs
    fit, over √S); not an error bar (benchmarks/drift_reliability.py); NaN for fiducials."""

    drift_nm_T2: np.ndarray
    anchor_frames: np.ndarray
    anchor_nm_S2: np.ndarray
    method: str
    segment_edges: np.ndarray | None = None
    disagreement_nm: float = float("nan")

    def segment_words(self) -> str:
        """'150 frames', or '166–167 frames' where whole frames do not divide the movie evenly."""
        lengths = np.diff(self.segment_edges)
        shortest, longest = int(lengths.min()), int(lengths.max())
        return f"{shortest:,} frames" if shortest == longest else f"{shortest:,}–{longest:,} frames"

    def summary(self) -> str:
        """One line for the user: the drift's range and where it came from."""
        span = np.ptp(self.drift_nm_T2, axis=0)
        line = f"drift over {len(self.drift_nm_T2):,} frames: x {span[0]:.1f} nm, y {span[1]:.1f} nm"
        if self.method != "rcc":
            return line + f" (from {len(self.anchor_frames):,} frames with fiducials)"
        return line + (f" (RCC: {len(self.anchor_frames)} segments of {self.segment_words()}, agreeing to "
                       f"±{self.disagreement_nm:.1f} nm)")

    def table(self) -> pd.DataFrame:
        """(frame, dx_nm, dy_nm), frames 0-based."""
        return pd.DataFrame({"frame": np.arange(len(self.drift_nm_T2)), "dx_nm": self.drift_nm_T2[:, 0],
                             "dy_nm": self.drift_nm_T2[:, 1]})


def localised_frames(table: pd.DataFrame) -> np.ndarray:
    """The frames (0-based, sorted) that hold localisations: RCC cuts them into segments (a run on a
    range of frames, or one with empty stretches, has frames without)."""
    return np.unique(table["frame"].to_numpy())


def auto_segment_frames(table: pd.DataFrame) -> int:
    """Frames (with localisations) per RCC segment when the user gives none: AUTO_SEGMENTS
    segments, fewer (down to MIN_SEGMENTS) where that would leave fewer than AUTO_LOCS_PER_SEGMENT
    localisations in each."""
    n_segments = int(np.clip(len(table) // AUTO_LOCS_PER_SEGMENT, MIN_SEGMENTS, AUTO_SEGMENTS))
    return max(len(localised_frames(table)) // n_segments, 1)


def rcc_drift(table: pd.DataFrame, segment_frames: int | None = None, pixel_nm: float = 20.0,
              max_drift_nm: float = 1000.0) -> Drift:
    """RCC: render each segment of at least `segment_frames` frames at `pixel_nm` (blurred by the
    median uncertainty), cross-correlate every pair, fit each peak to sub-pixel, solve the segment
    drifts by least squares over all pairs (pairs that disagree with the solution by more than 3x
    the median misfit, and by over a pixel, are dropped once), then interpolate a cubic spline
    through the segment centres to every frame. At least MIN_SEGMENTS segments, and a drift whose
    segments disagree by more than MAX_DISAGREEMENT_NM is refused. With `segment_frames` None,
    auto_segment_frames first, then twice, four times ... as long, and the longest that make
    MIN_SEGMENTS: the first that agrees. Segments count the frames that hold localisations."""
    check_table(table, ("frame", "x_nm", "y_nm"), "drift correction (RCC)", min_rows=2, min_frames=2)
    present = localised_frames(table)
    longest = len(present) // MIN_SEGMENTS  # the longest segments there are MIN_SEGMENTS of
    if longest < 1:
        raise InputError(f"too few frames for RCC: localisations in {len(present)} frames, and RCC needs at least "
                         f"{MIN_SEGMENTS} segments of a frame or more to measure a drift and check it: use fiducials")
    if len(table) < MIN_SEGMENTS * MIN_LOCS_PER_SEGMENT:
        raise InputError(f"too few localisations for RCC: {len(table):,} in frames {present[0] + 1:,}–"
                         f"{present[-1] + 1:,}, and RCC needs at least {MIN_SEGMENTS} segments of frames with "
                         f"{MIN_LOCS_PER_SEGMENT} or more each to measure a drift and check it: use fiducials")
    if segment_frames is not None:
        drift = _rcc_segments(table, segment_frames, pixel_nm, max_drift_nm)
        if _refused(drift):
            raise InputError(f"RCC could not measure the drift: {_disagreement_words(drift, table)}; "
                             + _longer_or_fiducials(segment_frames, longest))
        return drift
    lengths = [auto_segment_frames(table)]
    while lengths[-1] * 2 < longest:
        lengths.append(lengths[-1] * 2)
    lengths += [longest] if lengths[-1] < longest else []
    # a length that makes as many segments as the one before cuts the same segments: not tried twice
    counts = [len(present) // length for length in lengths]
    lengths = [length for k, length in enumerate(lengths) if k == 0 or counts[k] != counts[k - 1]]
    tried = []
    for length in lengths:
        try:
            drift = _rcc_segments(table, length, pixel_nm, max_drift_nm)
        except InputError:  # a segment too sparse (localisations come in bursts): longer ones hold more
            continue
        if not _refused(drift):
            return drift
        tried.append(drift)
    if not tried:
        raise InputError(f"too few localisations for RCC: segments of {lengths[0]:,} to {longest:,} frames leave one "
                         f"with fewer than {MIN_LOCS_PER_SEGMENT}: use fiducials")
    best = min(tried, key=lambda d: d.disagreement_nm)
    shortest, widest = np.diff(tried[0].segment_edges).min(), np.diff(tried[-1].segment_edges).max()
    raise InputError(f"RCC could not measure the drift with segments from {shortest:,} to {widest:,} frames "
                     f"long; at best {_disagreement_words(best, table)}. The segments share too little structure "
                     "(each molecule seen in few of them): use fiducials")


def _refused(drift: Drift) -> bool:
    """Whether RCC's segments disagree too much for its drift to be applied (not measured: refused)."""
    return not drift.disagreement_nm <= MAX_DISAGREEMENT_NM


def _longer_or_fiducials(segment_frames: int, longest: int) -> str:
    """What to try where segments of `segment_frames` frames gave no drift."""
    if segment_frames < longest:
        return f"set a longer segment length (at most {longest:,} frames), or use fiducials"
    return "use fiducials"


def _disagreement_words(drift: Drift, table: pd.DataFrame) -> str:
    n_segments = len(drift.anchor_frames)
    return (f"{n_segments} segments of {drift.segment_words()} (about {len(table) // n_segments:,} localisations "
            f"each) disagree by ±{drift.disagreement_nm:.1f} nm (at most {MAX_DISAGREEMENT_NM:g} nm is accepted)")


def _rcc_segments(table: pd.DataFrame, segment_frames: int, pixel_nm: float, max_drift_nm: float) -> Drift:
    """RCC (see rcc_drift) with segments of at least `segment_frames` frames, without the agreement check."""
    present = localised_frames(table)
    if segment_frames < 1:
        raise InputError("the segment length must be at least 1 frame")
    if len(present) // segment_frames < MIN_SEGMENTS:
        raise InputError(f"too few segments for RCC: the {len(present):,} frames with localisations make "
                         f"{len(present) // segment_frames} of {segment_frames:,} frames, and RCC needs at least "
                         f"{MIN_SEGMENTS} to check the drift it measures: set a segment length of at most "
                         f"{len(present) // MIN_SEGMENTS:,} frames, or use fiducials")
    edges = _segment_edges(present, segment_frames)
    segment = np.searchsorted(edges, table["frame"].to_numpy(), side="right") - 1
    counts = np.bincount(segment, minlength=len(edges) - 1)
    if counts.min() < MIN_LOCS_PER_SEGMENT:
        raise InputError(f"too few localisations for RCC: a segment of {segment_frames:,} frames holds only "
                         f"{counts.min()} (at least {MIN_LOCS_PER_SEGMENT} are needed): "
                         + _longer_or_fiducials(segment_frames, len(present) // MIN_SEGMENTS))
    x, y = table["x_nm"].to_numpy(), table["y_nm"].to_numpy()
    origin = np.array([x.min(), y.min()]) - max_drift_nm / 2
    extent = max(x.max() - x.min(), y.max() - y.min()) + max_drift_nm
    pixel_nm = max(pixel_nm, extent / MAX_IMAGE_PX)
    side = int(np.ceil(extent / pixel_nm))
    blur_px = _blur_px(table, pixel_nm)
    spectra = []
    for s in range(len(edges) - 1):
        image, _, _ = np.histogram2d(y[segment == s] - origin[1], x[segment == s] - origin[0], bins=side,
                                     range=((0, side * pixel_nm), (0, side * pixel_nm)))
        spectra.append(np.fft.rfft2(gaussian_filter(image, blur_px).astype(np.float32)))
    pairs = list(combinations(range(len(spectra)), 2))
    shifts_nm = np.array([_peak_shift(spectra[i], spectra[j], side, max_drift_nm / pixel_nm) for i, j in pairs])
    shifts_nm *= pixel_nm
    segment_nm, misfit_nm_P2 = _solve_pairs(pairs, shifts_nm, len(spectra), outlier_nm=pixel_nm)
    frames = table["frame"].to_numpy()
    centres = np.array([frames[segment == s].mean() for s in range(len(spectra))])
    start, stop = int(present[0]), int(present[-1]) + 1
    drift = _interpolate(centres, segment_nm, stop)
    drift[:start] = drift[start]  # no localisation before the first frame that has one to correct, or to anchor
    offset = drift[start:].mean(0)
    # the robust spread of the pairs of the segment that agrees least with the others (one segment off spoils
    # the drift around it, yet hardly moves the median over all pairs), widened for the S - 1 drifts the pairs fit
    n_pairs, n_segments = len(pairs), len(spectra)
    members = np.array(pairs)
    worst = max(float(np.median(np.abs(misfit_nm_P2[(members == s).any(1)]))) for s in range(n_segments))
    disagreement = 1.4826 * worst * np.sqrt(n_pairs / (n_pairs - n_segments + 1)) / np.sqrt(n_segments)
    return Drift(drift - offset, centres, segment_nm - offset, "rcc", edges, disagreement)


def _segment_edges(present: np.ndarray, segment_frames: int) -> np.ndarray:
    """Frame edges of len(present) // segment_frames segments of the frames with localisations
    `present`, as equal in those frames as whole frames allow (each holds at least segment_frames
    of them: the remainder is spread over them); a segment spans the empty frames inside it."""
    cut = np.linspace(0, len(present), len(present) // segment_frames + 1).round().astype(int)
    return np.append(present[cut[:-1]], present[-1] + 1)


def _blur_px(table: pd.DataFrame, pixel_nm: float) -> float:
    known = table["uncertainty_nm"].to_numpy() if "uncertainty_nm" in table else np.empty(0)
    sigma_nm = float(np.median(known)) if known.size else DEFAULT_SIGMA_NM
    return max(sigma_nm / pixel_nm, 1.0)


def _peak_shift(spectrum_a, spectrum_b, side: int, max_shift_px: float) -> np.ndarray:
    """(dx, dy) in pixels that image b is displaced from image a: the cross-correlation peak
    within max_shift_px, refined by a parabola through the log of its neighbours on each axis."""
    corr = np.fft.fftshift(np.fft.irfft2(np.conj(spectrum_a) * spectrum_b, s=(side, side)))
    centre = side // 2
    reach = int(min(max_shift_px, centre - 2))
    window = corr[centre - reach:centre + reach + 1, centre - reach:centre + reach + 1]
    row, col = np.unravel_index(np.argmax(window), window.shape)
    row, col = row + centre - reach, col + centre - reach

    def refine(minus, peak, plus) -> float:
        lm, lp, lc = (np.log(max(v, 1e-12)) for v in (minus, plus, peak))
        curvature = lm - 2 * lc + lp
        return 0.0 if curvature >= 0 else float(np.clip(0.5 * (lm - lp) / curvature, -0.5, 0.5))

    dy = row - centre + refine(corr[row - 1, col], corr[row, col], corr[row + 1, col])
    dx = col - centre + refine(corr[row, col - 1], corr[row, col], corr[row, col + 1])
    return np.array([dx, dy])


def _solve_pairs(pairs, shifts_nm_P2: np.ndarray, n: int, outlier_nm: float) -> tuple[np.ndarray, np.ndarray]:
    """Segment drifts (n, 2), segment 0 at 0, from pairwise shifts d_j − d_i by least squares, and
    every pair's misfit to them (P, 2) nm."""
    design = np.zeros((len(pairs), n))
    for row, (i, j) in enumerate(pairs):
        design[row, i], design[row, j] = -1.0, 1.0
    keep = np.ones(len(pairs), bool)
    for _ in range(2):
        solution, *_ = np.linalg.lstsq(design[keep][:, 1:], shifts_nm_P2[keep], rcond=None)
        drift = np.vstack([np.zeros(2), solution])
        misfit = np.linalg.norm(design @ drift - shifts_nm_P2, axis=1)
        limit = max(3 * np.median(misfit), outlier_nm)
        trial = misfit <= limit
        if trial.all() or np.linalg.matrix_rank(design[trial][:, 1:]) < n - 1:
            break
        keep = trial
    return drift, design @ drift - shifts_nm_P2


def _interpolate(anchor_frames: np.ndarray, anchor_nm: np.ndarray, n_frames: int) -> np.ndarray:
    """(n_frames, 2) drift through the anchors: a cubic spline inside, straight lines with the
    end slopes outside."""
    frames = np.arange(n_frames, dtype=float)
    if len(anchor_frames) < 3:
        slope = (anchor_nm[-1] - anchor_nm[0]) / max(anchor_frames[-1] - anchor_frames[0], 1e-9)
        drift = anchor_nm[0] + (frames[:, None] - anchor_frames[0]) * slope
    else:
        spline = CubicSpline(anchor_frames, anchor_nm, bc_type="natural")
        drift = spline(frames)
        for end, outside in ((0, frames < anchor_frames[0]), (-1, frames > anchor_frames[-1])):
            drift[outside] = anchor_nm[end] + (frames[outside, None] - anchor_frames[end]) * spline(
                anchor_frames[end], 1)
    return drift


def fiducial_drift(table: pd.DataFrame, fiducials_nm_K2: np.ndarray, radius_nm: float = 500.0,
                   smooth_frames: float = 0.0) -> Drift:
    """Drift from fiducials the user marked near (x_nm, y_nm): per fiducial, the brightest
    localisation within radius_nm in each frame, taken relative to its mean position; the mean
    over fiducials per frame, linear between frames where none was seen, optionally smoothed
    (Gaussian, smooth_frames)."""
    check_table(table, ("frame", "x_nm", "y_nm"), "drift correction (fiducials)", min_rows=2, min_frames=2)
    fiducials_nm_K2 = np.atleast_2d(np.asarray(fiducials_nm_K2, float))
    if fiducials_nm_K2.size == 0:
        raise InputError("no fiducials marked: give at least one (x, y) in nm")
    n_frames = int(table["frame"].max()) + 1
    brightness = table["photons"].to_numpy() if "photons" in table else np.ones(len(table))
    tracks = np.full((len(fiducials_nm_K2), n_frames, 2), np.nan)
    xy = table[["x_nm", "y_nm"]].to_numpy()
    for k, centre in enumerate(fiducials_nm_K2):
        near = np.flatnonzero(np.hypot(*(xy - centre).T) <= radius_nm)
        if near.size < 2:
            raise InputError(f"fiducial {k + 1} at ({centre[0]:.0f}, {centre[1]:.0f}) nm has fewer than 2 "
                             f"localisations within {radius_nm:.0f} nm")
        frames = table["frame"].to_numpy()[near]
        near = near[np.lexsort((-brightness[near], frames))]  # by frame, brightest first
        _, first = np.unique(table["frame"].to_numpy()[near], return_index=True)
        tracks[k, table["frame"].to_numpy()[near[first]]] = xy[near[first]]
        tracks[k] -= np.nanmean(tracks[k], axis=0)
    seen = ~np.isnan(tracks[..., 0])
    mean = np.nansum(np.where(seen[..., None], tracks, 0.0), axis=0) / np.maximum(seen.sum(0), 1)[:, None]
    anchors = np.flatnonzero(seen.any(0))
    drift = np.column_stack([np.interp(np.arange(n_frames), anchors, mean[anchors, a]) for a in range(2)])
    if smooth_frames > 0:
        from scipy.ndimage import gaussian_filter1d

        drift = gaussian_filter1d(drift, smooth_frames, axis=0, mode="nearest")
    offset = drift.mean(0)
    return Drift(drift - offset, anchors.astype(float), mean[anchors] - offset, "fiducials")


def apply_drift(table: pd.DataFrame, drift: Drift) -> pd.DataFrame:
    """A copy of `table` with each localisation's drift subtracted; other columns unchanged."""
    frames = table["frame"].to_numpy()
    if len(frames) and frames.max() >= len(drift.drift_nm_T2):
        raise InputError(f"the drift covers frames 1–{len(drift.drift_nm_T2)}; the table reaches frame "
                         f"{frames.max() + 1}")
    corrected = table.copy()
    corrected["x_nm"] = table["x_nm"].to_numpy() - drift.drift_nm_T2[frames, 0]
    corrected["y_nm"] = table["y_nm"].to_numpy() - drift.drift_nm_T2[frames, 1]
    return corrected


def drift_csv_path(corrected_path: str | os.PathLike) -> str:
    """Where the trajectory of a corrected table goes: its name with `.drift.csv` for its suffix."""
    root, _ = os.path.splitext(os.fspath(corrected_path))
    return root + ".drift.csv"


def write_drift_csv(path: str | os.PathLike, drift: Drift) -> None:
    """The trajectory as CSV (frame 1-based, as in every CSV we write; dx, dy in nm), atomically."""
    out = drift.table()
    out["frame"] += 1
    out = out.rename(columns={"dx_nm": "dx [nm]", "dy_nm": "dy [nm]"})
    with atomic_path(path) as tmp:
        out.to_csv(tmp, index=False, float_format="%.3f")
