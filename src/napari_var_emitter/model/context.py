"""The temporal window: a frame and its neighbours in time as one input of the network."""

from __future__ import annotations

import numpy as np


def context_reach(start: int, stop: int, n_frames: int, context_frames: int) -> tuple[int, int]:
    """(first, last): frames [first, last) of a stack of n_frames hold frames [start, stop) and the
    context_frames before and after them that the stack has."""
    return max(0, start - context_frames), min(n_frames, stop + context_frames)


def with_context(photons_THW: np.ndarray, context_frames: int, start: int = 0, stop: int | None = None) -> np.ndarray:
    """(stop - start, 1 + 2k, H, W) for k = context_frames and frames t in [start, stop) of the T
    frames (all by default): frame t in channel 0, then frames t - k .. t - 1 and t + 1 .. t + k;
    beyond either end of the T frames the nearest one stands in."""
    stop = len(photons_THW) if stop is None else stop
    offsets = np.r_[0, -context_frames:0, 1:context_frames + 1]
    index_TF = np.clip(np.arange(start, stop)[:, None] + offsets, 0, len(photons_THW) - 1)
    return photons_THW[index_TF]
