"""The temporal window: a frame and its neighbours in time as one input of the network."""

from __future__ import annotations

import numpy as np


def with_context(photons_THW: np.ndarray, context_frames: int) -> np.ndarray:
    """(T, 1 + 2k, H, W) for k = context_frames: frame t in channel 0, then frames t - k .. t - 1 and
    t + 1 .. t + k; beyond either end of the T frames the nearest one stands in."""
    offsets = np.r_[0, -context_frames:0, 1:context_frames + 1]
    index_TF = np.clip(np.arange(len(photons_THW))[:, None] + offsets, 0, len(photons_THW) - 1)
    return photons_THW[index_TF]
