"""Statistics of a localisation table: counts per frame, photon, uncertainty and background
distributions, and the bleaching curve (localisations per frame against time, fitted with
A·exp(−t/τ) + C)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from scipy.optimize import curve_fit

from .table_checks import DEPTH_COLUMNS, check_table, has_z

SUMMARISED = {"photons": "photons", "uncertainty_nm": "uncertainty [nm]", "background": "background [photons/px]",
              "probability": "probability", "sigma_nm": "PSF σ [nm]", "z_nm": "z [nm]",
              "uncertainty_z_nm": "uncertainty z [nm]"}
MAX_BLEACH_BINS = 200


@dataclasses.dataclass(frozen=True)
class Stats:
    """Per-frame counts (frames 0..T-1), the bleaching fit on binned counts, and a summary dict
    (medians and quartiles of each column in SUMMARISED the table has)."""

    counts_per_frame: np.ndarray
    bin_frames: np.ndarray
    bin_counts: np.ndarray
    bleach_fit: tuple[float, float, float] | None  # (A, τ frames, C) of A·exp(−t/τ) + C per frame
    summary: dict
    table: pd.DataFrame


def table_stats(table: pd.DataFrame) -> Stats:
    check_table(table, ("frame", "x_nm", "y_nm"), "statistics")
    n_frames = int(table["frame"].max()) + 1
    counts = np.bincount(table["frame"].to_numpy(), minlength=n_frames)
    width = int(np.ceil(n_frames / MAX_BLEACH_BINS))
    n_bins = int(np.ceil(n_frames / width))
    binned = np.add.reduceat(counts, np.arange(0, n_frames, width)) / np.diff(np.r_[np.arange(0, n_frames, width),
                                                                               n_frames])
    centres = np.minimum(np.arange(n_bins) * width + (width - 1) / 2, n_frames - 1)
    fit = _bleach_fit(centres, binned, shortest_tau=2.0 * width)
    summary = {"localizations": int(len(table)), "frames": n_frames,
               "localizations_per_frame": {"mean": float(counts.mean()), "median": float(np.median(counts))}}
    for column in SUMMARISED:
        if column in table and (column not in DEPTH_COLUMNS or has_z(table)):
            q1, median, q3 = np.percentile(table[column].to_numpy(float), [25, 50, 75])
            summary[column] = {"median": float(median), "q1": float(q1), "q3": float(q3)}
    if fit is not None:
        summary["bleaching"] = {"tau_frames": fit[1], "half_life_frames": fit[1] * np.log(2),
                                "plateau_per_frame": fit[2]}
    else:
        summary["bleaching"] = None
    return Stats(counts, centres, binned, fit, summary, table)


def _bleach_fit(t: np.ndarray, counts: np.ndarray, shortest_tau: float) -> tuple[float, float, float] | None:
    """(A, τ, C) or None when the counts do not decay over the movie (τ beyond 10x its length
    or shorter than `shortest_tau`, a drop under 5 % of the mean, fewer than 5 points, or no fit)."""
    if t.size < 5 or counts.max() <= 0:
        return None
    span = max(float(t[-1] - t[0]), 1.0)
    guess = (max(counts[0] - counts[-1], 1e-3), span / 3, max(counts[-1], 0.0))
    try:
        params, _ = curve_fit(lambda x, a, tau, c: a * np.exp(-x / tau) + c, t - t[0], counts, p0=guess,
                              bounds=([0, 1e-3, 0], [np.inf, 10 * span, np.inf]), maxfev=5000)
    except (RuntimeError, ValueError):
        return None
    a, tau, c = (float(v) for v in params)
    if tau >= 10 * span * 0.999 or tau < shortest_tau or a < 0.05 * max(counts.mean(), 1e-9):
        return None
    return a * np.exp(t[0] / tau), tau, c
