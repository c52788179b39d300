"""Frames -> tiles with context margins, and tile cores -> stitched maps.

A frame up to tile_px + 2 * margin_px is processed whole; larger frames are cut into tiles of
`tile_px` camera pixels plus a `margin_px` border of context (both multiples of the coarsest
token stride; the frame is padded to fit). A detection is kept only by the tile whose core holds
it, so tiles stitch without seams or duplicates; maps are stitched from the tiles' cores.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch.nn import functional as F

from ..model.config import ModelConfig

# tile cores (camera px) when PredictOptions.tile_px is None. Attention over every token (v1)
# costs the square of the tile: 128-px cores. With local windows, or without a transformer (the
# no-VAR baseline), 256-px cores (frames up to 320 px whole) ran fastest on 2 CPU cores
# (docs/benchmarks.md, "Tiles and passes on a CPU")
GLOBAL_ATTENTION_TILE_PX = 128
LOCAL_ATTENTION_TILE_PX = 256


def default_tile_px(config: ModelConfig) -> int:
    """The tile core that keeps `config`'s model cheapest per pixel (camera px)."""
    global_attention = config.var_prior and config.window_px == 0
    return GLOBAL_ATTENTION_TILE_PX if global_attention else LOCAL_ATTENTION_TILE_PX


@dataclasses.dataclass(frozen=True)
class TileLayout:
    """core_h, core_w: tile core in camera pixels; margin: context on each side; origins: each
    core's (row, col) corner in the frame; pad_h, pad_w: padding after the frame's last row and
    column so the cores cover it."""

    height: int
    width: int
    core_h: int
    core_w: int
    margin: int
    origins: tuple[tuple[int, int], ...]
    pad_h: int
    pad_w: int

    @classmethod
    def plan(cls, height: int, width: int, step: int, tile_px: int, margin_px: int) -> TileLayout:
        """Tiles for a height x width frame; `step` is the coarsest token stride (px)."""
        if tile_px % step or margin_px % step:
            raise ValueError(f"tile_px and margin_px must be multiples of {step}")
        rounded_h, rounded_w = -(-height // step) * step, -(-width // step) * step
        core_h = rounded_h if rounded_h <= tile_px + 2 * margin_px else tile_px
        core_w = rounded_w if rounded_w <= tile_px + 2 * margin_px else tile_px
        margin = margin_px if (core_h < height or core_w < width) else 0
        origins = tuple((r, c) for r in range(0, height, core_h) for c in range(0, width, core_w))
        return cls(height, width, core_h, core_w, margin, origins,
                   origins[-1][0] + core_h - height, origins[-1][1] + core_w - width)

    def cut(self, image_B1HW: torch.Tensor) -> torch.Tensor:
        """(n_tiles * B, 1, core_h + 2 margin, core_w + 2 margin): tile ti holds rows ti * B ..
        (ti + 1) * B. Padding reflects where the frame is large enough, else repeats the edge."""
        m = self.margin
        pads = (m, m + self.pad_w, m, m + self.pad_h)
        if any(pads):
            mode = "reflect" if max(pads) < min(self.height, self.width) else "replicate"
            image_B1HW = F.pad(image_B1HW, pads, mode=mode)
        return torch.cat([image_B1HW[..., r:r + self.core_h + 2 * m, c:c + self.core_w + 2 * m]
                          for r, c in self.origins])

    def in_core(self, x_px: np.ndarray, y_px: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
        """Which positions (camera px, frame coordinates) lie in the core at `origin` and the frame."""
        r, c = origin
        return ((x_px >= c) & (x_px < min(c + self.core_w, self.width))
                & (y_px >= r) & (y_px < min(r + self.core_h, self.height)))


def paste(target: np.ndarray, block: np.ndarray) -> None:
    """Copy a tile's core block (T, h, w) into its place in a stitched map, cut where the frame ends."""
    target[...] = block[:, :target.shape[1], :target.shape[2]]
