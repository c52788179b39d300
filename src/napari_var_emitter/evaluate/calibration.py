"""Calibration of per-scale probability maps: Brier score and reliability per scale."""

from __future__ import annotations

import numpy as np
import pandas as pd


def occupancy_grid(truth: pd.DataFrame, n_frames: int, shape: tuple[int, int], cell_nm: float) -> np.ndarray:
    """(T, h, w) 1 where a cell of `cell_nm` holds at least one true emitter."""
    grid = np.zeros((n_frames, *shape), np.float32)
    rows = (truth["y_nm"].to_numpy() // cell_nm).astype(int)
    cols = (truth["x_nm"].to_numpy() // cell_nm).astype(int)
    ok = (rows < shape[0]) & (cols < shape[1])
    grid[truth["frame"].to_numpy()[ok], rows[ok], cols[ok]] = 1.0
    return grid


def calibration(prob: np.ndarray, occupied: np.ndarray, n_bins: int = 10) -> dict[str, float]:
    """Brier score, the base rate's Brier score (a map that always says the mean), and the
    expected calibration error (|mean predicted - observed| weighted over probability bins)."""
    p, y = prob.ravel(), occupied.ravel()
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        sel = bins == b
        if sel.any():
            ece += sel.mean() * abs(p[sel].mean() - y[sel].mean())
    return {"brier": float(np.mean((p - y) ** 2)), "brier_base_rate": float(np.mean((y.mean() - y) ** 2)),
            "ece": float(ece), "occupied_fraction": float(y.mean())}
