"""Output-grid maps (named by model/head.py or model/tokenizer.py) -> localisations: local
maxima with 3x3 probability integration and uncertainty-weighted 3x3 fusion of the offsets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from ..model.targets import Z_SCALE_NM, map_to_photons


def find_detections(prob_BHW: torch.Tensor, threshold: float, occupied: float | None = None):
    """Cells that are 3x3 local maxima of the probability whose 3x3 sum >= threshold; with
    `occupied`, also every cell whose own probability is >= occupied (for maps that mark each
    emitter's own cell, like the tokenizer's, so that emitters in adjacent cells stay apart).

    Returns (batch, row, col, integrated probability) as 1-D tensors.
    """
    prob = prob_BHW[:, None]
    summed = F.avg_pool2d(prob, 3, stride=1, padding=1) * 9
    peak = prob == F.max_pool2d(prob, 3, stride=1, padding=1)
    keep = peak & (summed >= threshold) & (prob > 0)
    if occupied is not None:
        keep |= prob >= occupied
    b, _, r, c = torch.nonzero(keep, as_tuple=True)
    return b, r, c, summed[b, 0, r, c].clamp(max=1.0)


def fuse_offsets(maps: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """dx, dy (B, H, W) of each cell as the mean of its 3x3 neighbourhood's estimates, weighted by
    probability / (sigma_dx sigma_dy). Each neighbour predicts the offset from its own centre,
    so its column (row) shift is added to its dx (dy)."""
    weight = (maps["prob"] / (maps["sigma_dx"] * maps["sigma_dy"]).clamp(min=1e-6))[:, None]
    shift = torch.arange(-1.0, 2.0, device=weight.device)
    kernels = torch.stack([torch.ones(3, 3, device=weight.device), shift.expand(3, 3), shift[:, None].expand(3, 3)])
    total, col_shift, row_shift = F.conv2d(weight, kernels[:, None], padding=1).unbind(1)
    box = F.avg_pool2d(torch.cat([weight * maps["dx"][:, None], weight * maps["dy"][:, None]], 1), 3, 1, 1) * 9
    total = total.clamp(min=1e-12)
    return (box[:, 0] + col_shift) / total, (box[:, 1] + row_shift) / total


def maps_to_table(maps: dict[str, torch.Tensor], threshold: float, cell_nm: float, frames,
                  origin_nm=(0.0, 0.0), occupied: float | None = None) -> pd.DataFrame:
    """Localisations from named output-grid maps (head_maps or tokenizer_maps).

    dx, dy are in cells from the cell centre (fused over 3x3 where the maps have sigmas);
    frames (B,) gives each map's frame index; origin_nm (x, y) is where the maps' cell (0, 0)
    corner lies in the frame; `occupied` as in find_detections.
    """
    b, r, c, p = find_detections(maps["prob"], threshold, occupied)
    if "sigma_dx" in maps:  # the head's maps carry uncertainties: fuse the neighbours' estimates
        maps = {**maps, **dict(zip(("dx", "dy"), fuse_offsets(maps)))}
    at = {name: m[b, r, c].cpu().numpy() for name, m in maps.items() if name != "prob"}
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
    return table

