"""Local attention at the fine scales (ModelConfig.window_px > 0).

A token of a fine ("local") scale attends to every token of the coarse ("global") scales and to
the local-scale tokens of its own window of window_px x window_px camera pixels only, so the
cost of attention grows linearly with the tile's area instead of with its square. Training
applies the rule as an (L, L) mask over the whole sequence; inference partitions each local
scale's tokens into windows and attends window by window (transformer.SelfAttention), which
is the same computation. Windows are numbered row-major over the tile.
"""

from __future__ import annotations

import torch

MIN_WINDOW_TOKENS = 4  # a scale is local when its window spans at least 4 x 4 tokens


def local_scales(strides_px: tuple[int, ...], window_px: int) -> tuple[bool, ...]:
    """Per scale (coarse to fine): attends within windows (True) or over the whole tile."""
    return tuple(window_px > 0 and stride * MIN_WINDOW_TOKENS <= window_px for stride in strides_px)


def window_index(grid: tuple[int, int], tokens_per_window: int) -> torch.Tensor:
    """(h * w,) the window of each token of an (h, w) grid, raster order."""
    h, w = grid
    rows = torch.arange(h)[:, None] // tokens_per_window
    cols = torch.arange(w)[None, :] // tokens_per_window
    return (rows * (w // tokens_per_window) + cols).flatten()


def attention_mask(grids, strides_px, window_px: int, level_L: torch.Tensor) -> torch.Tensor:
    """(L, L) bool, True where attention is allowed (training's mask): the key's scale is not
    finer than the query's (block-causal) and the key is on a global scale or in the query's
    window; level_L is each token's scale index."""
    allowed = level_L[:, None] >= level_L[None, :]
    local = local_scales(strides_px, window_px)
    if not any(local):
        return allowed
    windows = [window_index(g, window_px // s) if is_local else torch.full((g[0] * g[1],), -1)
               for g, s, is_local in zip(grids, strides_px, local)]
    window_L = torch.cat(windows).to(level_L.device)
    key_global = window_L[None, :] < 0
    return allowed & (key_global | (window_L[:, None] == window_L[None, :]))


def to_windows(x_BHLc: torch.Tensor, grid: tuple[int, int], tokens_per_window: int) -> torch.Tensor:
    """(B, heads, h * w, c) raster order -> (B, heads, n_windows, t * t, c)."""
    B, H, _, c = x_BHLc.shape
    (h, w), t = grid, tokens_per_window
    x = x_BHLc.view(B, H, h // t, t, w // t, t, c).permute(0, 1, 2, 4, 3, 5, 6)
    return x.reshape(B, H, (h // t) * (w // t), t * t, c)


def from_windows(x_BHNlc: torch.Tensor, grid: tuple[int, int], tokens_per_window: int) -> torch.Tensor:
    """Inverse of to_windows."""
    B, H, _, _, c = x_BHNlc.shape
    (h, w), t = grid, tokens_per_window
    x = x_BHNlc.view(B, H, h // t, w // t, t, t, c).permute(0, 1, 2, 4, 3, 5, 6)
    return x.reshape(B, H, h * w, c)
