"""Background photons per pixel: flat, slowly varying, or structured like real samples
(a gradient across the field, out-of-focus blobs, haze at several scales)."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

BLOB_SIGMA_UM = (1.0, 4.0)  # out-of-focus cells, vesicles: Gaussian blobs this wide
BLOBS_PER_100_UM2 = 2.0
HAZE_SCALES_UM = (1.0, 4.0)  # smooth noise at these correlation lengths


def background_map(shape: tuple[int, int], mean: float, variation: float, scale_px: float, rng: np.random.Generator,
                   contrast: float = 1.0, pixel_size_nm: float = 100.0) -> np.ndarray:
    """(H, W) photons/px with mean `mean`: mean * (1 + variation * f), f smooth with max |f| = 1
    on a scale of ~scale_px; with contrast > 1 also multiplied by a structured field whose
    brightest pixel is `contrast` times its dimmest (structured_field), the mean kept."""
    if variation == 0:
        background = np.full(shape, float(mean))
    else:
        field = gaussian_filter(rng.normal(size=shape), scale_px, mode="wrap")
        field -= field.mean()
        field /= np.abs(field).max()
        background = mean * (1 + variation * field)
    if contrast > 1:
        factor = 1 + (contrast - 1) * structured_field(shape, pixel_size_nm, rng)
        background *= factor / factor.mean()
    return background


def structured_field(shape: tuple[int, int], pixel_size_nm: float, rng: np.random.Generator) -> np.ndarray:
    """(H, W) in [0, 1], minimum 0 and maximum 1: a random mix of a linear gradient in a random
    direction, out-of-focus blobs (Gaussians BLOB_SIGMA_UM wide, some centred off the field) and
    haze (smoothed noise at HAZE_SCALES_UM)."""
    height, width = shape
    um = pixel_size_nm / 1000
    y_um, x_um = np.mgrid[0:height, 0:width] * um
    angle = rng.uniform(0, 2 * np.pi)
    parts = [np.cos(angle) * x_um + np.sin(angle) * y_um]
    blobs = np.zeros(shape)
    n_blobs = 1 + rng.poisson(BLOBS_PER_100_UM2 * height * width * um**2 / 100)
    for _ in range(n_blobs):
        sigma = rng.uniform(*BLOB_SIGMA_UM)
        cy, cx = rng.uniform(-sigma, height * um + sigma), rng.uniform(-sigma, width * um + sigma)
        blobs += rng.uniform(0.3, 1.0) * np.exp(-((y_um - cy) ** 2 + (x_um - cx) ** 2) / (2 * sigma**2))
    parts.append(blobs)
    parts.append(sum(gaussian_filter(rng.normal(size=shape), scale / um, mode="reflect") for scale in HAZE_SCALES_UM))
    weights = rng.dirichlet(np.ones(len(parts)))
    field = sum(w * _unit(p) for w, p in zip(weights, parts))
    return _unit(field)


def _unit(values: np.ndarray) -> np.ndarray:
    """Rescaled to [0, 1] (zeros if constant)."""
    span = values.max() - values.min()
    return (values - values.min()) / span if span > 0 else np.zeros_like(values)
