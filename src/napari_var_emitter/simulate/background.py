"""Background photons per pixel: flat, or slowly varying across the field."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter


def background_map(
    shape: tuple[int, int], mean: float, variation: float, scale_px: float, rng: np.random.Generator
) -> np.ndarray:
    """(H, W) photons/px: mean * (1 + variation * f), f smooth with max |f| = 1, scale ~scale_px."""
    if variation == 0:
        return np.full(shape, float(mean))
    field = gaussian_filter(rng.normal(size=shape), scale_px, mode="wrap")
    field -= field.mean()
    field /= np.abs(field).max()
    return mean * (1 + variation * field)
