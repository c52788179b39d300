"""Merging blinks: one fluorophore that stays on for several frames is localised once per
frame; linking those localisations and averaging them gives one better localisation per blink.

Linking runs frame by frame: a localisation joins the nearest blink seen within the last
max_gap + 1 frames whose position lies within the linking radius, one localisation per blink
per frame (closest pairs first); otherwise it starts a new blink. The radius is `radius_nm`
when given, else RADIUS_SIGMAS x the combined uncertainty of the localisation and the blink's
running mean, sqrt(σ_loc² + σ_blink²); in 3-D (z_nm and uncertainty_z_nm) z must lie as close, by
its own uncertainty (one fluorophore keeps its depth: two at one x, y and far apart in z are two).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InputError
from .table_checks import check_table

RADIUS_SIGMAS = 3.5  # a localisation of the same blink falls outside this with probability exp(-3.5²/2) = 0.2 %
DEFAULT_MAX_GAP = 1  # frames a blink may go unseen and still continue


def link_blinks(table: pd.DataFrame, radius_nm: float | None = None, max_gap: int = DEFAULT_MAX_GAP) -> np.ndarray:
    """Blink number (0..B-1) per row of `table`, in order of each blink's first frame."""
    columns = ("frame", "x_nm", "y_nm") + (() if radius_nm is not None else ("uncertainty_nm",))
    if radius_nm is None and "uncertainty_nm" not in table:
        raise InputError("merging: the table has no uncertainty_nm column to set the linking radius from; "
                         "give the radius")
    depth = radius_nm is None and {"z_nm", "uncertainty_z_nm"} <= set(table.columns)
    check_table(table, columns + (("z_nm", "uncertainty_z_nm") if depth else ()), "merging", min_frames=2)
    if radius_nm is not None and not radius_nm > 0:
        raise InputError("the linking radius must be more than 0 nm")
    if max_gap < 0:
        raise InputError("the largest gap must be 0 frames or more")
    frames = table["frame"].to_numpy()
    order = np.argsort(frames, kind="stable")
    xy = table[["x_nm", "y_nm"]].to_numpy()[order]
    sigma = (table["uncertainty_nm"].to_numpy()[order] if radius_nm is None else np.ones(len(order)))
    weight = 1.0 / np.maximum(sigma, 1e-6) ** 2
    frames_sorted = frames[order]
    z = table["z_nm"].to_numpy(float)[order] if depth else None
    weight_z = 1.0 / np.maximum(table["uncertainty_z_nm"].to_numpy(float)[order], 1e-6) ** 2 if depth else None
    blink = np.empty(len(order), np.int64)
    # running state per blink (at most one per localisation): weighted sum of positions, sum of
    # weights, last frame seen; `open_` holds the blinks that may still continue
    sum_xy, sum_w = np.zeros((len(order), 2)), np.zeros(len(order))
    sum_z, sum_wz = np.zeros(len(order)), np.zeros(len(order))
    last = np.zeros(len(order), np.int64)
    n_blinks, open_ = 0, np.empty(0, np.int64)
    starts = np.flatnonzero(np.r_[True, frames_sorted[1:] != frames_sorted[:-1], True])
    for begin, end in zip(starts[:-1], starts[1:]):
        frame = frames_sorted[begin]
        rows = np.arange(begin, end)
        open_ = open_[last[open_] >= frame - max_gap - 1]
        taken = np.full(rows.size, -1)
        if open_.size:
            mean = sum_xy[open_] / sum_w[open_, None]
            distance = np.hypot(*(xy[rows, None, :] - mean[None]).transpose(2, 0, 1))
            if radius_nm is None:
                reach = RADIUS_SIGMAS * np.sqrt(sigma[rows, None] ** 2 + 1.0 / sum_w[None, open_])
            else:
                reach = np.full(distance.shape, radius_nm)
            near = distance <= reach
            if depth:
                apart_z = np.abs(z[rows, None] - sum_z[None, open_] / sum_wz[None, open_])
                near &= apart_z <= RADIUS_SIGMAS * np.sqrt(1.0 / weight_z[rows, None] + 1.0 / sum_wz[None, open_])
            loc_index, blink_index = np.nonzero(near)
            used_blinks = set()
            for k in np.argsort(distance[loc_index, blink_index], kind="stable"):
                i, j = loc_index[k], blink_index[k]
                if taken[i] < 0 and j not in used_blinks:
                    taken[i] = open_[j]
                    used_blinks.add(j)
        new = np.flatnonzero(taken < 0)
        taken[new] = np.arange(n_blinks, n_blinks + new.size)
        n_blinks += new.size
        open_ = np.r_[open_, taken[new]]
        np.add.at(sum_xy, taken, xy[rows] * weight[rows, None])
        np.add.at(sum_w, taken, weight[rows])
        if depth:
            np.add.at(sum_z, taken, z[rows] * weight_z[rows])
            np.add.at(sum_wz, taken, weight_z[rows])
        last[taken] = frame
        blink[rows] = taken
    out = np.empty(len(order), np.int64)
    out[order] = blink
    return out


def merge_blinks(table: pd.DataFrame, radius_nm: float | None = None, max_gap: int = DEFAULT_MAX_GAP) -> pd.DataFrame:
    """One row per blink (see link_blinks): frame = first frame, last_frame, n_merged; x / y / z
    each weighted by 1/σ² of its own axis (uncertainty_x/y/z_nm; uncertainty_nm where the table
    has no per-axis one; equal weights without any), each uncertainty column = 1/sqrt(Σ 1/σ²),
    photons summed, background, σ and probability averaged. Per-row flags of the refinement
    (fitted, significance) do not describe a blink and are left out."""
    blink = link_blinks(table, radius_nm, max_gap)
    return merge_groups(table, blink)


AXIS_UNCERTAINTY = {"x_nm": "uncertainty_x_nm", "y_nm": "uncertainty_y_nm", "z_nm": "uncertainty_z_nm"}


def merge_groups(table: pd.DataFrame, group: np.ndarray) -> pd.DataFrame:
    """Merge the rows of `table` that share a `group` number, as merge_blinks describes."""
    frame = table["frame"].to_numpy()
    n = int(group.max()) + 1 if len(group) else 0
    count = np.bincount(group, minlength=n)
    first = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first, group, frame)
    last = np.zeros(n, np.int64)
    np.maximum.at(last, group, frame)
    merged = {"frame": first}
    for column, own in AXIS_UNCERTAINTY.items():
        if column in table:
            weight = _inverse_variance(table, own if own in table else "uncertainty_nm")
            sum_w = np.bincount(group, weight, minlength=n)
            merged[column] = np.bincount(group, weight * table[column].to_numpy(), minlength=n) / sum_w
            if own in table:
                merged[own] = 1.0 / np.sqrt(sum_w)
    if "photons" in table:
        merged["photons"] = np.bincount(group, table["photons"].to_numpy(), minlength=n)
    for column in ("background", "sigma_nm", "probability"):
        if column in table:
            merged[column] = np.bincount(group, table[column].to_numpy(), minlength=n) / count
    if "uncertainty_nm" in table:
        merged["uncertainty_nm"] = 1.0 / np.sqrt(np.bincount(group, _inverse_variance(table, "uncertainty_nm"),
                                                             minlength=n))
    merged["last_frame"] = last
    merged["n_merged"] = count
    return pd.DataFrame(merged).sort_values("frame", kind="stable", ignore_index=True)


def _inverse_variance(table: pd.DataFrame, column: str) -> np.ndarray:
    """1/σ² (nm⁻²) of each row from uncertainty column `column`; ones where the table has none."""
    if column not in table:
        return np.ones(len(table))
    return 1.0 / np.maximum(table[column].to_numpy(), 1e-6) ** 2
