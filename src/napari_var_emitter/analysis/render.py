"""Super-resolution images from localisation tables: each localisation a Gaussian of its own
uncertainty (or one σ for all, or a plain histogram), optionally coloured by frame or z, with a
scale bar burnt in for export."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import erf

from ..errors import InputError
from .table_checks import check_table

METHODS = ("gaussian", "histogram")
COLOUR_BY = ("frame", "z_nm")
DEFAULT_SIGMA_NM = 20.0  # blur when a table has no uncertainty_nm and none is given
SPLAT_BUDGET = 4_000_000  # pixel weights computed at once while rendering
MAX_RENDER_PX = 400_000_000  # pixels of one render (its float64 sums: 3.2 GB); 20,000 x 20,000


def _render_size(shape_nm: tuple[float, float], pixel_nm: float, most_px: int) -> tuple[int, int]:
    """(rows, cols) of a render of a field of shape_nm (height, width) at pixel_nm; InputError before any memory is
    taken where they exceed most_px (a new user's 0.01 nm pixels asked for 3 TiB and ended as an internal error)."""
    rows, cols = (int(np.ceil(extent / pixel_nm)) for extent in shape_nm)
    if rows * cols > most_px:
        fits = pixel_nm * np.sqrt(rows * cols / most_px)
        raise InputError(f"a render of {cols:,} x {rows:,} px of {pixel_nm:g} nm is too large (at most "
                         f"{most_px / 1e6:,.0f} million px): choose a render pixel of "
                         f"{np.ceil(fits * 10) / 10:g} nm or more")
    return rows, cols


def render(table: pd.DataFrame, shape_nm: tuple[float, float], pixel_nm: float, method: str = "gaussian",
           sigma_nm: float | None = None, weights: np.ndarray | None = None) -> np.ndarray:
    """(ceil(H/pixel), ceil(W/pixel)) float32 image over a field of shape_nm (height, width);
    pixel (0, 0) covers [0, pixel_nm). "histogram" counts localisations per pixel; "gaussian"
    spreads each over the pixels as a Gaussian of its own `uncertainty_nm` (or `sigma_nm` for
    all when given, or 20 nm when the table has no uncertainty), integrated over each pixel.
    Each localisation adds its weight (default 1), so the image sums to the number of
    localisations in the field (less what a Gaussian spills over the edge)."""
    if method not in METHODS:
        raise InputError(f"render method must be one of {METHODS}")
    if not pixel_nm > 0:
        raise InputError("the render pixel size must be > 0 nm")
    rows, cols = _render_size(shape_nm, pixel_nm, MAX_RENDER_PX)
    weights = np.ones(len(table)) if weights is None else np.asarray(weights, float)
    x_px, y_px = table["x_nm"].to_numpy() / pixel_nm, table["y_nm"].to_numpy() / pixel_nm
    if method == "histogram":
        image, _, _ = np.histogram2d(y_px, x_px, bins=(rows, cols), range=((0, rows), (0, cols)), weights=weights)
        return image.astype(np.float32)
    if sigma_nm is not None and not sigma_nm > 0:
        raise InputError(f"the render blur must be > 0 nm, got {sigma_nm:g} (use --method histogram for none)")
    if sigma_nm is not None or "uncertainty_nm" not in table:
        sigma_px = np.full(len(table), (DEFAULT_SIGMA_NM if sigma_nm is None else sigma_nm) / pixel_nm)
    else:
        sigma_px = np.maximum(table["uncertainty_nm"].to_numpy(), 1e-3) / pixel_nm
    image = np.zeros(rows * cols)
    reach = np.ceil(4 * sigma_px).astype(np.int64)  # patch half-width in pixels
    for r in np.unique(reach):
        chosen = np.flatnonzero(reach == r)
        per_chunk = max(1, SPLAT_BUDGET // (2 * r + 2) ** 2)
        for start in range(0, chosen.size, per_chunk):
            part = chosen[start:start + per_chunk]
            _splat(image, rows, cols, x_px[part], y_px[part], sigma_px[part], weights[part], int(r))
    return image.reshape(rows, cols).astype(np.float32)


def _splat(image: np.ndarray, rows: int, cols: int, x_px, y_px, sigma_px, weights, reach: int) -> None:
    """Add to the flat (rows*cols) image each point's Gaussian integrated over the pixels of a
    (2 reach + 1)² patch around it (separable: erf differences along x and y)."""
    offsets = np.arange(-reach, reach + 1)

    def along(centre_px):
        first = np.floor(centre_px).astype(np.int64)[:, None] + offsets  # (N, P) pixel indices
        scale = np.sqrt(2) * sigma_px[:, None]
        edges = (first - centre_px[:, None]) / scale
        return first, 0.5 * (erf(edges + 1 / scale) - erf(edges))

    col, wx = along(x_px)
    row, wy = along(y_px)
    weight_NPP = (weights[:, None, None] * wy[:, :, None] * wx[:, None, :])
    inside_NPP = ((row >= 0) & (row < rows))[:, :, None] & ((col >= 0) & (col < cols))[:, None, :]
    flat_NPP = row[:, :, None] * cols + col[:, None, :]
    image += np.bincount(flat_NPP[inside_NPP], weight_NPP[inside_NPP], minlength=image.size)


def render_coloured(table: pd.DataFrame, shape_nm: tuple[float, float], pixel_nm: float, by: str = "frame",
                    method: str = "gaussian", sigma_nm: float | None = None, colormap: str = "turbo",
                    saturation: float = 99.5) -> np.ndarray:
    """(H, W, 3) RGB in [0, 1]: hue from the mean of column `by` (frame or z_nm) in each pixel,
    brightness from the density, full at its `saturation` percentile."""
    import matplotlib

    if by not in COLOUR_BY:
        raise InputError(f"colour by one of {COLOUR_BY}, not {by!r}")
    check_table(table, ("frame", "x_nm", "y_nm", by), f"render coloured by {by}")
    if pixel_nm > 0:  # two renders and an RGBA float64 colouring of them: about 9 times one render's memory
        _render_size(shape_nm, pixel_nm, MAX_RENDER_PX // 9)
    values = table[by].to_numpy(float)
    density = render(table, shape_nm, pixel_nm, method, sigma_nm)
    weighted = render(table, shape_nm, pixel_nm, method, sigma_nm, weights=values)
    low, high = colour_limits(table, by)
    mean = np.where(density > 1e-9, weighted / np.maximum(density, 1e-9), low)
    hue = (mean - low) / (high - low) if high > low else np.zeros_like(mean)
    positive = density[density > 1e-9]
    top = float(np.percentile(positive, saturation)) if positive.size else 1.0
    brightness = np.clip(density / max(top, 1e-12), 0, 1)
    return (matplotlib.colormaps[colormap](np.clip(hue, 0, 1))[..., :3] * brightness[..., None]).astype(np.float32)


def colour_limits(table: pd.DataFrame, by: str) -> tuple[float, float]:
    """The values of column `by` (frame 0-based, or z_nm) at the two ends of render_coloured's colour map."""
    values = table[by].to_numpy(float)
    return float(values.min()), float(values.max())


def frame_range(table: pd.DataFrame, first: int | None = None, last: int | None = None) -> pd.DataFrame:
    """The rows with first <= frame <= last (0-based, inclusive; None: open)."""
    keep = np.ones(len(table), bool)
    if first is not None:
        keep &= table["frame"].to_numpy() >= first
    if last is not None:
        keep &= table["frame"].to_numpy() <= last
    if not len(table):
        raise InputError("the table holds no localisations: nothing to render")
    if first is not None and last is not None and first > last:
        raise InputError(f"first frame {first + 1:,} is after last frame {last + 1:,}: make the first frame the "
                         "earlier one (both included)")
    if not keep.any():
        frames = table["frame"].to_numpy()
        raise InputError(f"no localisations in frames {'' if first is None else f'{first + 1:,}'}–"
                         f"{'' if last is None else f'{last + 1:,}'}: the table's are frames {frames.min() + 1:,}–"
                         f"{frames.max() + 1:,}")
    return table[keep]


def field_of(table: pd.DataFrame) -> tuple[float, float]:
    """(height, width) in nm from 0 to the farthest localisation: the field a table covers."""
    return float(table["y_nm"].max()) + 1.0, float(table["x_nm"].max()) + 1.0


def scale_bar_nm(width_nm: float) -> float:
    """A round length (1, 2 or 5 × 10^k nm) near a fifth of the width."""
    target = width_nm / 5
    power = 10 ** np.floor(np.log10(target))
    return float(max(m * power for m in (1, 2, 5) if m * power <= target))


def add_scale_bar(image: np.ndarray, pixel_nm: float, length_nm: float | None = None) -> tuple[np.ndarray, float]:
    """A copy of an (H, W) or (H, W, 3) image with a bar of length_nm (default scale_bar_nm)
    in its lower right corner, at the image's maximum; returns (image, length_nm)."""
    height, width = image.shape[:2]
    length_nm = scale_bar_nm(width * pixel_nm) if length_nm is None else length_nm
    length_px = int(round(length_nm / pixel_nm))
    thick, margin = max(2, height // 80), max(2, width // 40)
    if length_px < 1 or length_px > width - 2 * margin:
        raise InputError(f"a {length_nm:g} nm scale bar does not fit a {width * pixel_nm:.0f} nm wide image")
    out = image.copy()
    out[height - margin - thick:height - margin, width - margin - length_px:width - margin] = image.max()
    return out, length_nm
