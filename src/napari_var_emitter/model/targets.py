"""Emitter tables -> target maps on the output grid (`upscale` x the camera grid).

Map channels: occupancy (1 in the cell holding an emitter), dx, dy (emitter position minus
cell centre, in cells), photons (log-scaled), and z (in µm) with a 3D PSF. `dense` targets
also fill dx, dy, photons, z in the 3x3 cells around each emitter (positions relative to
each cell's centre) for the localisation head, whose detections may peak in a neighbour.
"""

from __future__ import annotations

import numpy as np
import torch

PHOTON_SCALE = 1000.0  # photons -> log1p(photons / PHOTON_SCALE)
Z_SCALE_NM = 1000.0
# the most photons a map's value is read as: far outside any data a model knows (a gain typed 1,000
# times too large gave head values whose photons overflowed to inf, and NaN after)
MAX_MAP_PHOTONS = 1e9


def photons_to_map(photons):
    return np.log1p(np.asarray(photons) / PHOTON_SCALE)


def map_to_photons(values):
    """Photons (never below 0: a head's value under the map of 0 photons means none; at most MAX_MAP_PHOTONS)."""
    top = np.log1p(MAX_MAP_PHOTONS / PHOTON_SCALE)
    return PHOTON_SCALE * np.expm1(np.clip(np.asarray(values, np.float64), 0.0, top))


def render_target(x_px: np.ndarray, y_px: np.ndarray, photons: np.ndarray, z_nm: np.ndarray,
                  tile_px: tuple[int, int], upscale: int, with_z: bool, dense: bool) -> np.ndarray:
    """(C, H*upscale, W*upscale) float32 map of emitters at camera-pixel positions (x_px, y_px)."""
    height, width = tile_px[0] * upscale, tile_px[1] * upscale
    channels = 5 if with_z else 4
    target = np.zeros((channels, height, width), np.float32)
    u, v = np.asarray(x_px) * upscale, np.asarray(y_px) * upscale  # output-grid coordinates
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    u, v = u[inside], v[inside]
    values = [photons_to_map(np.asarray(photons)[inside])]
    if with_z:
        values.append(np.asarray(z_nm)[inside] / Z_SCALE_NM)
    col, row = np.floor(u).astype(int), np.floor(v).astype(int)
    # neighbours first, far to near, so the emitter's own cell (and brighter emitters) win
    shifts = sorted(((dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)), key=lambda s: -abs(s[0]) - abs(s[1]))
    order = np.argsort(values[0])
    for dr, dc in shifts if dense else [(0, 0)]:
        r, c = row[order] + dr, col[order] + dc
        ok = (r >= 0) & (r < height) & (c >= 0) & (c < width)
        r, c, idx = r[ok], c[ok], order[ok]
        target[1, r, c] = u[idx] - (c + 0.5)
        target[2, r, c] = v[idx] - (r + 0.5)
        for channel, value in enumerate(values, start=3):
            target[channel, r, c] = value[idx]
    target[0, row, col] = 1.0
    return target


def occupancy_at(occupancy_B1HW: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, 1, h, w) 1 where a cell of that coarser grid holds at least one emitter."""
    return (torch.nn.functional.adaptive_max_pool2d(occupancy_B1HW, grid) > 0).float()
