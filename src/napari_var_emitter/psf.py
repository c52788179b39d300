"""Gaussian point-spread function integrated over square pixels, optionally astigmatic.

Coordinates are in pixels (px) here: pixel i covers [i, i + 1), its centre is at i + 0.5.
z is in nm: 0 is the plane midway between the x and y foci, and z grows with the slice index
of a bead stack (docs/conventions.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from scipy.special import erf

_SQRT2 = np.sqrt(2.0)
_MIN_WIDTH2 = 0.01  # floor of 1 + u² + A u³ + B u⁴, where large negative A would take it below 0


@dataclasses.dataclass(frozen=True)
class DefocusCurve:
    """Width of one axis of an astigmatic PSF against z (Huang et al. 2008; the NAIRR model):

    sigma(z) = sigma0_nm * sqrt(1 + u² + cubic·u³ + quartic·u⁴),  u = (z − focus_nm) / depth_nm.
    """

    sigma0_nm: float = 130.0
    focus_nm: float = 0.0
    depth_nm: float = 500.0
    cubic: float = 0.0
    quartic: float = 0.0

    def __post_init__(self) -> None:
        if not self.sigma0_nm > 0 or not self.depth_nm > 0:
            raise ValueError("a defocus curve needs sigma0_nm > 0 and depth_nm > 0")

    def sigma_nm(self, z_nm: Any) -> np.ndarray:
        """sigma (nm) at z (nm), any shape."""
        return self.sigma0_nm * np.sqrt(self._width2(z_nm))

    def slope(self, z_nm: Any) -> np.ndarray:
        """d sigma / d z (nm per nm) at z (nm)."""
        u = self._u(z_nm)
        dwidth2 = 2 * u + 3 * self.cubic * u**2 + 4 * self.quartic * u**3
        return self.sigma0_nm * dwidth2 / (2 * np.sqrt(self._width2(z_nm)) * self.depth_nm)

    def _u(self, z_nm: Any) -> np.ndarray:
        return (np.asarray(z_nm, dtype=np.float64) - self.focus_nm) / self.depth_nm

    def _width2(self, z_nm: Any) -> np.ndarray:
        u = self._u(z_nm)
        return np.maximum(1 + u**2 + self.cubic * u**3 + self.quartic * u**4, _MIN_WIDTH2)


@dataclasses.dataclass(frozen=True)
class PSF:
    """Gaussian PSF: sigma_nm in 2-D; with `astigmatism`, sigma_x and sigma_y follow z along
    curve_x and curve_y, and emitters are drawn in z_range_nm (nm). halo_fraction > 0 (simulation
    only) moves that fraction of each spot's photons into a Gaussian halo halo_width times wider:
    the energy an Airy pattern's rings or a slight defocus carry outside the core, so that training
    sees PSFs that are not exactly Gaussian. Fits and Cramér–Rao bounds use the Gaussian core."""

    sigma_nm: float = 130.0
    astigmatism: bool = False
    curve_x: DefocusCurve = DefocusCurve(focus_nm=300.0)
    curve_y: DefocusCurve = DefocusCurve(focus_nm=-300.0)
    z_range_nm: tuple[float, float] = (-500.0, 500.0)
    halo_fraction: float = 0.0
    halo_width: float = 2.5

    def __post_init__(self) -> None:
        if not self.sigma_nm > 0:
            raise ValueError("PSF sigma_nm must be > 0")
        if not (0 <= self.halo_fraction < 1 and self.halo_width > 1):
            raise ValueError("PSF halo_fraction must be in [0, 1) and halo_width > 1")
        for name in ("curve_x", "curve_y"):
            if isinstance(getattr(self, name), dict):
                object.__setattr__(self, name, DefocusCurve(**getattr(self, name)))
        low, high = (float(v) for v in self.z_range_nm)
        if not low < high:
            raise ValueError(f"PSF z_range_nm must be (low, high) with low < high, got {self.z_range_nm}")
        object.__setattr__(self, "z_range_nm", (low, high))

    def sigmas_nm(self, z_nm: Any) -> tuple[np.ndarray, np.ndarray]:
        """Per-emitter (sigma_x, sigma_y) in nm for z in nm (any shape)."""
        z = np.asarray(z_nm, dtype=np.float64)
        if not self.astigmatism:
            sigma = np.full(z.shape, self.sigma_nm)
            return sigma, sigma.copy()
        return self.curve_x.sigma_nm(z), self.curve_y.sigma_nm(z)

    def slopes(self, z_nm: Any) -> tuple[np.ndarray, np.ndarray]:
        """(d sigma_x / dz, d sigma_y / dz) (nm per nm) at z (nm); zero in 2-D."""
        z = np.asarray(z_nm, dtype=np.float64)
        if not self.astigmatism:
            return np.zeros(z.shape), np.zeros(z.shape)
        return self.curve_x.slope(z), self.curve_y.slope(z)

    def to_dict(self) -> dict[str, Any]:
        return {"model": "gaussian", **dataclasses.asdict(self), "z_range_nm": list(self.z_range_nm)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PSF:
        """Inverse of `to_dict`; also reads the symmetric form of files written before per-axis
        curves (focal_offset_nm c, depth_nm d: x sharpest at z = +c, y at z = −c)."""
        values = dict(values)
        if values.pop("model", "gaussian") != "gaussian":
            raise ValueError("unsupported PSF model: only 'gaussian' is known")
        if "focal_offset_nm" in values or "depth_nm" in values:
            c, d = values.pop("focal_offset_nm", 300.0), values.pop("depth_nm", 500.0)
            sigma = values.get("sigma_nm", 130.0)
            values["curve_x"] = DefocusCurve(sigma, c, d)
            values["curve_y"] = DefocusCurve(sigma, -c, d)
        return cls(**values)


def astigmatic_psf(curve_x: DefocusCurve, curve_y: DefocusCurve, z_range_nm: tuple[float, float]) -> PSF:
    """An astigmatic PSF whose round width sigma_nm (what detection and fit ROIs use) is the
    geometric mean of the two axes' widths at z = 0, midway between the foci."""
    return PSF(sigma_nm=float(np.sqrt(curve_x.sigma_nm(0.0) * curve_y.sigma_nm(0.0))), astigmatism=True,
               curve_x=curve_x, curve_y=curve_y, z_range_nm=z_range_nm)


def consecutive_pixel_fractions(first_px: np.ndarray, n_px: int, centre_px: np.ndarray,
                                sigma_px: np.ndarray) -> np.ndarray:
    """Fraction of a 1-D Gaussian falling in each of the pixels [first_px + i, first_px + i + 1),
    i < n_px (first_px integer, centre_px and sigma_px (E, 1) or scalars) -> (E, n_px); each edge
    shared by two pixels evaluated once."""
    edges = first_px + np.arange(n_px + 1)
    cumulative = erf((edges - centre_px) / (_SQRT2 * sigma_px))
    return 0.5 * (cumulative[..., 1:] - cumulative[..., :-1])


def _at_pixels(along_y: list[np.ndarray], along_x: list[np.ndarray], pixels) -> tuple[list, list]:
    """Per-axis terms (N, R) of N spots, set to multiply into their values at the ROI's pixels:
    each (N, R, 1) along y and (N, 1, R) along x, broadcast over the whole ROI; or with pixels =
    (rows, cols), each (N, M), the terms of those pixels alone, (N, M) each (one gather per axis)."""
    if pixels is None:
        return [a[:, :, None] for a in along_y], [a[:, None, :] for a in along_x]
    rows, cols = pixels
    start = np.arange(len(rows))[:, None] * along_y[0].shape[1]  # each spot's first term, flat
    flat_rows, flat_cols = start + rows, start + cols
    return [np.take(a.ravel(), flat_rows) for a in along_y], [np.take(a.ravel(), flat_cols) for a in along_x]


def _per_spot(values_N, terms: np.ndarray) -> np.ndarray:
    """(N,) values per spot, shaped to multiply into per-pixel terms of `terms`' shape ((N, R, 1)
    or (N, M), _at_pixels)."""
    return np.asarray(values_N, np.float64).reshape(len(terms), *(1,) * (terms.ndim - 1))


def spot_values(x_px, y_px, sigma_x_px, sigma_y_px, photons, size: int, pixels=None) -> np.ndarray:
    """Expected photons (N, R*R) of N spots over no background (arguments as
    spot_model_and_jacobian's, pixels too): its values, without computing any derivative."""
    fx = consecutive_pixel_fractions(0, size, np.asarray(x_px, np.float64)[:, None],
                                     np.asarray(sigma_x_px, np.float64)[:, None])
    fy = consecutive_pixel_fractions(0, size, np.asarray(y_px, np.float64)[:, None],
                                     np.asarray(sigma_y_px, np.float64)[:, None])
    (fy,), (fx,) = _at_pixels([fy], [fx], pixels)
    return np.maximum((_per_spot(photons, fy) * (fy * fx)).reshape(len(fx), -1), 1e-9)


# frames of at most this many spot windows ((2 radius + 1)^2 px) are rendered as one matrix
# product per frame: on 2 CPU cores that ran as fast as the windows at 20-25 and faster below
# (a 64 x 64 px training tile under a halo 2.5x as wide as sigma 2.5 px: 58 against 5 ms)
WINDOWS_PER_FRAME_PRODUCT = 20


def render_spots(
    shape: tuple[int, int, int],
    frame: np.ndarray,
    x_px: np.ndarray,
    y_px: np.ndarray,
    sigma_x_px: np.ndarray,
    sigma_y_px: np.ndarray,
    photons: np.ndarray,
) -> np.ndarray:
    """Expected photons (T, H, W) of spots (all (E,) arrays), cut to the frame: each spot over
    the pixels within 4 sigma of its own (the widest spot's sigma)."""
    if len(frame) == 0:
        return np.zeros(shape)
    radius = int(np.ceil(4 * max(sigma_x_px.max(), sigma_y_px.max())))
    by_products = shape[1] * shape[2] <= WINDOWS_PER_FRAME_PRODUCT * (2 * radius + 1) ** 2
    render = _render_by_frame_products if by_products else _render_in_windows
    return render(shape, frame, x_px, y_px, sigma_x_px, sigma_y_px, photons, radius)


def _render_in_windows(shape, frame, x_px, y_px, sigma_x_px, sigma_y_px, photons, radius: int) -> np.ndarray:
    """render_spots as each spot's (2 radius + 1)^2 px window added into the stack."""
    n_frames, height, width = shape
    image = np.zeros(n_frames * height * width)
    steps = np.arange(-radius, radius + 1)
    for chunk in np.array_split(np.arange(len(frame)), max(1, len(frame) // 20000)):
        ix = np.floor(x_px[chunk])[:, None].astype(np.int64) + steps  # (E, K)
        iy = np.floor(y_px[chunk])[:, None].astype(np.int64) + steps
        ex = consecutive_pixel_fractions(ix[:, :1], steps.size, x_px[chunk, None], sigma_x_px[chunk, None])
        ey = consecutive_pixel_fractions(iy[:, :1], steps.size, y_px[chunk, None], sigma_y_px[chunk, None])
        values = photons[chunk, None, None] * ey[:, :, None] * ex[:, None, :]  # (E, K, K)
        inside = ((iy >= 0) & (iy < height))[:, :, None] & ((ix >= 0) & (ix < width))[:, None, :]
        index = (frame[chunk, None, None] * height + iy[:, :, None]) * width + ix[:, None, :]
        image += np.bincount(index[inside], weights=values[inside], minlength=image.size)
    return image.reshape(shape)


def _render_by_frame_products(shape, frame, x_px, y_px, sigma_x_px, sigma_y_px, photons, radius: int) -> np.ndarray:
    """render_spots as one (H, E_t) @ (E_t, W) product per frame t of the spots' row and column
    profiles, zero beyond `radius` px of each spot's pixel: the windows' terms summed in another
    order (equal to rounding), faster where the windows are large beside the frame."""
    n_frames, height, width = shape
    rows, cols = np.arange(height), np.arange(width)
    profile_y = photons[:, None] * consecutive_pixel_fractions(0, height, y_px[:, None], sigma_y_px[:, None])  # (E, H)
    profile_y[np.abs(rows - np.floor(y_px)[:, None]) > radius] = 0.0
    profile_x = consecutive_pixel_fractions(0, width, x_px[:, None], sigma_x_px[:, None])  # (E, W)
    profile_x[np.abs(cols - np.floor(x_px)[:, None]) > radius] = 0.0
    order = np.argsort(frame, kind="stable")
    bounds = np.searchsorted(frame[order], np.arange(n_frames + 1))
    image = np.zeros(shape)
    for t in range(n_frames):
        spots = order[bounds[t]:bounds[t + 1]]
        image[t] = profile_y[spots].T @ profile_x[spots]
    return image
