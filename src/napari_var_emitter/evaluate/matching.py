"""Per-frame one-to-one matching of predictions to ground truth (Hungarian, within tolerance)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree


def match_frames(pred: pd.DataFrame, truth: pd.DataFrame, lateral_tol_nm: float = 250.0,
                 axial_tol_nm: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices (pred_rows, truth_rows) of matched pairs, frame by frame.

    Pairs count only within `lateral_tol_nm` in x-y (and `axial_tol_nm` in z when given).
    Per frame, the matching maximises the number of pairs, then minimises total distance.
    """
    pred_rows, truth_rows = [], []
    pred_groups = pred.groupby("frame").indices
    for frame, t_idx in truth.groupby("frame").indices.items():
        p_idx = pred_groups.get(frame)
        if p_idx is None:
            continue
        p, t = _match_points(pred.iloc[p_idx], truth.iloc[t_idx], lateral_tol_nm, axial_tol_nm)
        pred_rows.append(p_idx[p])
        truth_rows.append(t_idx[t])
    if not pred_rows:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(pred_rows), np.concatenate(truth_rows)


def _match_points(pred, truth, lateral_tol_nm, axial_tol_nm):
    """Match within one frame; solves each cluster of candidate pairs separately."""
    xy_p = pred[["x_nm", "y_nm"]].to_numpy()
    xy_t = truth[["x_nm", "y_nm"]].to_numpy()
    pairs = cKDTree(xy_p).sparse_distance_matrix(cKDTree(xy_t), lateral_tol_nm, output_type="ndarray")
    i, j, d = pairs["i"], pairs["j"], pairs["v"]
    if axial_tol_nm is not None:
        keep = np.abs(pred["z_nm"].to_numpy()[i] - truth["z_nm"].to_numpy()[j]) <= axial_tol_nm
        i, j, d = i[keep], j[keep], d[keep]
    n_p, n_t = len(xy_p), len(xy_t)
    graph = coo_matrix((np.ones_like(d), (i, n_p + j)), shape=(n_p + n_t,) * 2)
    _, label = connected_components(graph, directed=False)
    matched_p, matched_t = [], []
    forbidden = lateral_tol_nm * (n_p + n_t + 1) * 10  # costlier than any set of allowed pairs
    for component in np.unique(label[i]):
        edges = label[i] == component
        p_ids, p_pos = np.unique(i[edges], return_inverse=True)
        t_ids, t_pos = np.unique(j[edges], return_inverse=True)
        cost = np.full((p_ids.size, t_ids.size), forbidden)
        cost[p_pos, t_pos] = d[edges]
        r, c = linear_sum_assignment(cost)
        allowed = cost[r, c] < forbidden
        matched_p.append(p_ids[r[allowed]])
        matched_t.append(t_ids[c[allowed]])
    if not matched_p:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(matched_p), np.concatenate(matched_t)
