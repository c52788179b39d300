"""Gaussian point-spread function integrated over square pixels, optionally astigmatic.

Coordinates are in pixels (px) here: pixel i covers [i, i + 1), its centre is at i + 0.5.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from scipy.special import erf

_SQRT2 = np.sqrt(2.0)


@dataclasses.dataclass(frozen=True)
class PSF:
    """Gaussian PSF; with `astigmatism`, sigma_x and sigma_y follow z (Huang et al. 2008):

    sigma_x(z) = sigma_nm * sqrt(1 + ((z - c) / d)^2),  sigma_y(z) = ... (z + c) ...
    with c = focal_offset_nm and d = depth_nm; emitters are drawn in z_range_nm.
    """

    sigma_nm: float = 130.0
    astigmatism: bool = False
    focal_offset_nm: float = 300.0
    depth_nm: float = 500.0
    z_range_nm: tuple[float, float] = (-500.0, 500.0)

    def __post_init__(self) -> None:
        if not self.sigma_nm > 0 or not self.depth_nm > 0:
            raise ValueError("PSF sigma_nm and depth_nm must be > 0")
        object.__setattr__(self, "z_range_nm", tuple(float(v) for v in self.z_range_nm))

    def sigmas_nm(self, z_nm: Any) -> tuple[np.ndarray, np.ndarray]:
        """Per-emitter (sigma_x, sigma_y) in nm for z in nm (any shape)."""
        z = np.asarray(z_nm, dtype=np.float64)
        if not self.astigmatism:
            sigma = np.full(z.shape, self.sigma_nm)
            return sigma, sigma.copy()
        c, d = self.focal_offset_nm, self.depth_nm
        return (self.sigma_nm * np.sqrt(1 + ((z - c) / d) ** 2),
                self.sigma_nm * np.sqrt(1 + ((z + c) / d) ** 2))

    def to_dict(self) -> dict[str, Any]:
        return {"model": "gaussian", **dataclasses.asdict(self), "z_range_nm": list(self.z_range_nm)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PSF:
        """Inverse of `to_dict`."""
        if values.get("model", "gaussian") != "gaussian":
            raise ValueError(f"unsupported PSF model {values['model']!r}")
        return cls(**{k: v for k, v in values.items() if k != "model"})


def pixel_fractions(lo_px: np.ndarray, centre_px: np.ndarray, sigma_px: np.ndarray) -> np.ndarray:
    """Fraction of a 1-D Gaussian falling in the pixel [lo, lo + 1).

    Broadcasts: e.g. lo (E, K) with centre and sigma (E, 1) -> (E, K).
    """
    scale = _SQRT2 * sigma_px
    return 0.5 * (erf((lo_px + 1 - centre_px) / scale) - erf((lo_px - centre_px) / scale))


def render_spots(
    shape: tuple[int, int, int],
    frame: np.ndarray,
    x_px: np.ndarray,
    y_px: np.ndarray,
    sigma_x_px: np.ndarray,
    sigma_y_px: np.ndarray,
    photons: np.ndarray,
) -> np.ndarray:
    """Expected photons (T, H, W) of spots (all (E,) arrays), cut to the frame."""
    n_frames, height, width = shape
    image = np.zeros(n_frames * height * width)
    if len(frame) == 0:
        return image.reshape(shape)
    radius = int(np.ceil(4 * max(sigma_x_px.max(), sigma_y_px.max())))
    steps = np.arange(-radius, radius + 1)
    for chunk in np.array_split(np.arange(len(frame)), max(1, len(frame) // 20000)):
        ix = np.floor(x_px[chunk])[:, None].astype(np.int64) + steps  # (E, K)
        iy = np.floor(y_px[chunk])[:, None].astype(np.int64) + steps
        ex = pixel_fractions(ix, x_px[chunk, None], sigma_x_px[chunk, None])
        ey = pixel_fractions(iy, y_px[chunk, None], sigma_y_px[chunk, None])
        values = photons[chunk, None, None] * ey[:, :, None] * ex[:, None, :]  # (E, K, K)
        inside = ((iy >= 0) & (iy < height))[:, :, None] & ((ix >= 0) & (ix < width))[:, None, :]
        index = (frame[chunk, None, None] * height + iy[:, :, None]) * width + ix[:, None, :]
        image += np.bincount(index[inside], weights=values[inside], minlength=image.size)
    return image.reshape(shape)
