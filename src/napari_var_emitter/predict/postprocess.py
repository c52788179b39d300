"""Output-grid maps (named by model/head.py or model/tokenizer.py) -> localisations: local
maxima with 3x3 probability integration and uncertainty-weighted 3x3 fusion of the offsets;
maxima that place their emitter within one cell of each other are one emitter."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..fit.groups import frame_chains
from ..model.targets import Z_SCALE_NM, map_to_photons

# row and column offsets of a cell's 3x3 neighbourhood, row-major
NEIGHBOUR_ROWS = torch.tensor([-1, -1, -1, 0, 0, 0, 1, 1, 1])
NEIGHBOUR_COLS = torch.tensor([-1, 0, 1, -1, 0, 1, -1, 0, 1])
CENTRE = 4


def neighbourhoods(map_BHW: torch.Tensor, b: torch.Tensor, r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """(n, 9) the 3x3 cells around each cell (b, r, c) of map_BHW (offsets NEIGHBOUR_ROWS,
    NEIGHBOUR_COLS); 0 outside the map."""
    rows, cols = r[:, None] + NEIGHBOUR_ROWS.to(r.device), c[:, None] + NEIGHBOUR_COLS.to(c.device)
    inside = (rows >= 0) & (rows < map_BHW.shape[1]) & (cols >= 0) & (cols < map_BHW.shape[2])
    values = map_BHW[b[:, None], rows.clamp(0, map_BHW.shape[1] - 1), cols.clamp(0, map_BHW.shape[2] - 1)]
    return values * inside


def find_detections(prob_BHW: torch.Tensor, threshold: float, occupied: float | None = None):
    """Cells that are 3x3 local maxima of the probability whose 3x3 sum >= threshold; with
    `occupied`, also every cell whose own probability is >= occupied (for maps that mark each
    emitter's own cell, like the tokenizer's, so that emitters in adjacent cells stay apart).
    Only candidates are examined, at their 3x3 neighbourhoods: a maximum whose 3x3 sum reaches
    the threshold holds at least a ninth of it.

    Returns (batch, row, col, integrated probability) as 1-D tensors.
    """
    candidate = (prob_BHW >= threshold / 9) & (prob_BHW > 0)
    if occupied is not None:
        candidate |= prob_BHW >= occupied
    b, r, c = torch.nonzero(candidate, as_tuple=True)
    around = neighbourhoods(prob_BHW, b, r, c)
    own, summed = around[:, CENTRE], around.sum(1)
    keep = (own == around.max(1).values) & (summed >= threshold)
    if occupied is not None:
        keep |= own >= occupied
    return b[keep], r[keep], c[keep], summed[keep].clamp(max=1.0)


def fuse_offsets(maps: dict[str, torch.Tensor], b: torch.Tensor, r: torch.Tensor, c: torch.Tensor):
    """dx, dy (n,) of the cells (b, r, c) as the mean of each one's 3x3 neighbourhood's
    estimates, weighted by probability / (sigma_dx sigma_dy). Each neighbour predicts the offset
    from its own centre, so its column (row) shift is added to its dx (dy)."""
    around = {name: neighbourhoods(maps[name], b, r, c) for name in ("prob", "sigma_dx", "sigma_dy", "dx", "dy")}
    weight = around["prob"] / (around["sigma_dx"] * around["sigma_dy"]).clamp(min=1e-6)
    total = weight.sum(1).clamp(min=1e-12)
    dx = (weight * (around["dx"] + NEIGHBOUR_COLS.to(weight))).sum(1) / total
    dy = (weight * (around["dy"] + NEIGHBOUR_ROWS.to(weight))).sum(1) / total
    return dx, dy


def maps_to_table(maps: dict[str, torch.Tensor], threshold: float, cell_nm: float, frames,
                  origin_nm=(0.0, 0.0), occupied: float | None = None) -> pd.DataFrame:
    """Localisations from named output-grid maps (head_maps or tokenizer_maps).

    dx, dy are in cells from the cell centre (fused over 3x3 where the maps have sigmas);
    frames (B,) gives each map's frame index; origin_nm (x, y) is where the maps' cell (0, 0)
    corner lies in the frame; `occupied` as in find_detections.
    """
    b, r, c, p = find_detections(maps["prob"], threshold, occupied)
    fused = "sigma_dx" in maps  # the head's maps carry uncertainties: fuse the neighbours' estimates
    at = {name: m[b, r, c] for name, m in maps.items() if name != "prob" and not (fused and name in ("dx", "dy"))}
    if fused:
        at["dx"], at["dy"] = fuse_offsets(maps, b, r, c)
    at = {name: values.cpu().numpy() for name, values in at.items()}
    col, row = c.cpu().numpy(), r.cpu().numpy()
    table = pd.DataFrame({
        "frame": np.asarray(frames)[b.cpu().numpy()],
        "x_nm": origin_nm[0] + (col + 0.5 + at["dx"]) * cell_nm,
        "y_nm": origin_nm[1] + (row + 0.5 + at["dy"]) * cell_nm,
        "photons": map_to_photons(at["photons"]),
        "probability": p.cpu().numpy(),
    })
    if "z" in at:
        table.insert(3, "z_nm", at["z"] * Z_SCALE_NM)
    if "background" in at:
        table["background"] = at["background"]
    if "sigma_dx" in at:
        table["uncertainty_nm"] = np.sqrt((at["sigma_dx"] ** 2 + at["sigma_dy"] ** 2) / 2) * cell_nm
    if "sigma_z" in at:
        table["uncertainty_z_nm"] = at["sigma_z"] * Z_SCALE_NM
    return merge_same_emitter(table, cell_nm)


def merge_same_emitter(table: pd.DataFrame, cell_nm: float) -> pd.DataFrame:
    """Detections of one frame whose positions lie within one cell (cell_nm) of each other, in
    chains, are one emitter: two maxima two cells apart that both point at it (a model whose
    probability is spread over the cells around each emitter, the `mixture` loss, makes them; no
    split places two emitters that close, 0.7 PSF sigmas). One row each: the most probable row's
    values, the probability-weighted mean position, the probabilities summed (at most 1)."""
    if len(table) < 2:
        return table
    n = len(table)
    label = frame_chains(table["frame"].to_numpy(), table["x_nm"].to_numpy(), table["y_nm"].to_numpy(), cell_nm)
    if label.max() == n - 1:  # no two in one chain
        return table
    probability = table["probability"].to_numpy()
    first = np.lexsort((-probability, label))  # per emitter, its most probable row first
    keep = first[np.r_[True, label[first][1:] != label[first][:-1]]]
    weight = np.bincount(label, probability, n)[label[keep]]
    merged = table.iloc[keep].copy()
    for column in ("x_nm", "y_nm"):
        merged[column] = np.bincount(label, probability * table[column].to_numpy(), n)[label[keep]] / weight
    merged["probability"] = np.minimum(weight, 1.0)
    return merged.sort_index().reset_index(drop=True)

