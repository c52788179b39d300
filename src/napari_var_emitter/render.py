"""Super-resolution images from localisation tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter

METHODS = ("gaussian", "histogram")


def render(table: pd.DataFrame, shape_nm: tuple[float, float], pixel_nm: float, method: str = "gaussian",
           sigma_nm: float | None = None) -> np.ndarray:
    """(ceil(H/pixel), ceil(W/pixel)) image of localisations over a field of shape_nm (height,
    width); pixel (0, 0) covers [0, pixel_nm). "histogram" counts localisations per pixel;
    "gaussian" blurs the counts with sigma_nm (default: the median `uncertainty_nm`, else 20 nm),
    so the image sums to the number of localisations either way."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    if not pixel_nm > 0:
        raise ValueError("pixel_nm must be > 0")
    rows, cols = (int(np.ceil(extent / pixel_nm)) for extent in shape_nm)
    image, _, _ = np.histogram2d(table["y_nm"], table["x_nm"], bins=(rows, cols),
                                 range=((0, rows * pixel_nm), (0, cols * pixel_nm)))
    if method == "histogram":
        return image.astype(np.float32)
    if sigma_nm is None:
        known = table["uncertainty_nm"].dropna() if "uncertainty_nm" in table else pd.Series(dtype=float)
        sigma_nm = float(known.median()) if len(known) else 20.0
    return gaussian_filter(image, sigma_nm / pixel_nm, mode="constant").astype(np.float32)
