"""sCMOS per-pixel calibration: offset [ADU], read-noise variance [ADU²] and gain [ADU/e⁻] maps,
each a (Y, X) .npy or TIFF in the layout storm-analysis uses (the mean, the variance and the
slope of dark and flat stacks).

Offset and gain replace the camera's one baseline and gain. The variance map marks noisy (hot)
pixels: a pixel whose read-noise variance exceeds NOISY_FACTOR x the median is pulled towards
the median of its 8 neighbours, by the weight its excess noise deserves (w = mu / (mu + excess),
mu the neighbours' median in e⁻, excess its variance above the median in e⁻²), so a hot pixel
cannot look like a spot while a quiet pixel keeps its value.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

from ..errors import InputError
from .camera import FIELD_INFO, MAP_FIELDS

NOISY_FACTOR = 4.0  # read-noise variance above this multiple of the median marks a noisy pixel
_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


@dataclasses.dataclass(frozen=True)
class PixelCalibration:
    """A camera's per-pixel calibration: offset [ADU] and gain [ADU/e⁻] as (Y, X) float32 maps,
    or the camera's one value where it gives no map; the read-noise variance map [ADU²] or None."""

    offset_adu: np.ndarray | np.float32
    variance_adu2_YX: np.ndarray | None
    gain_adu_per_e: np.ndarray | np.float32
    shape: tuple[int, int]

    def electrons(self, adu_TYX: np.ndarray) -> np.ndarray:
        """(..., Y, X) ADU -> photo-electrons (float32)."""
        self._check_shape(adu_TYX.shape[-2:])
        return (adu_TYX - self.offset_adu) / self.gain_adu_per_e

    def read_variance_e2_YX(self) -> np.ndarray:
        """Read-noise variance per pixel in e⁻² (needs the variance map)."""
        return self.variance_adu2_YX / self.gain_adu_per_e ** 2

    def quieten_noisy_pixels(self, photons_TYX: np.ndarray, electrons_per_photon: float) -> np.ndarray:
        """Pull each noisy pixel towards its neighbours' median (module docstring); a copy."""
        self._check_shape(photons_TYX.shape[-2:])
        variance_YX = self.read_variance_e2_YX()
        typical = float(np.median(variance_YX))
        rows, cols = np.nonzero(variance_YX > NOISY_FACTOR * max(typical, 1e-6))
        if not rows.size:
            return photons_TYX
        height, width = variance_YX.shape
        around = np.stack([photons_TYX[:, np.clip(rows + dy, 0, height - 1), np.clip(cols + dx, 0, width - 1)]
                           for dy, dx in _NEIGHBOURS], axis=-1)  # (T, n, 8)
        local = np.median(around, axis=-1)
        mu_e = np.maximum(local * electrons_per_photon, 1.0)
        excess_e2 = variance_YX[rows, cols] - typical
        weight = mu_e / (mu_e + excess_e2)
        out = photons_TYX.copy()
        out[:, rows, cols] = weight * photons_TYX[:, rows, cols] + (1 - weight) * local
        return out

    def _check_shape(self, frame_shape) -> None:
        if tuple(frame_shape) != self.shape:
            raise InputError(f"the camera's calibration maps are {self.shape[0]}x{self.shape[1]} pixels but the "
                             f"frames are {frame_shape[0]}x{frame_shape[1]}: use maps cut to the same camera "
                             "region (ROI) as the stack")


def load_pixel_calibration(offset: str | None, variance: str | None, gain: str | None, baseline_adu: float,
                           e_per_adu: float) -> PixelCalibration:
    """Read the maps (at least one given); baseline_adu and 1 / e_per_adu stand in for a missing
    offset or gain map. Each file is read once per process and changes on disk are picked up
    (cached by path and modification time)."""
    stamps = [(p, Path(p).stat().st_mtime_ns) if p else None for p in (offset, variance, gain)]
    return _load(*stamps, float(baseline_adu), float(e_per_adu))


@functools.lru_cache(maxsize=8)
def _load(offset, variance, gain, baseline_adu: float, e_per_adu: float) -> PixelCalibration:
    maps = [None if stamp is None else read_map(stamp[0]) for stamp in (offset, variance, gain)]
    shapes = {m.shape for m in maps if m is not None}
    if len(shapes) > 1:
        sizes = ", ".join(f"{FIELD_INFO[name].label} {m.shape[1]}×{m.shape[0]} px"
                          for name, m in zip(MAP_FIELDS, maps, strict=True) if m is not None)
        raise InputError(f"the calibration maps differ in size ({sizes}): give maps of one camera region")
    if maps[1] is not None and (maps[1] < 0).any():
        raise InputError(f"variance map {variance[0]}: negative variance")
    if maps[2] is not None and not (maps[2] > 0).all():
        raise InputError(f"gain map {gain[0]}: gains must be > 0 ADU/e⁻")
    offset_adu = maps[0] if maps[0] is not None else np.float32(baseline_adu)
    gain_adu_per_e = maps[2] if maps[2] is not None else np.float32(1 / e_per_adu)
    return PixelCalibration(offset_adu, maps[1], gain_adu_per_e, shapes.pop())


def read_map(path: str) -> np.ndarray:
    """A (Y, X) finite float32 map from .npy (never unpickled) or TIFF."""
    suffix = Path(path).suffix.lower()
    if not Path(path).is_file():
        raise InputError(f"calibration map {path}: no such file")
    if suffix not in (".npy", ".tif", ".tiff"):
        raise InputError(f"calibration map {path}: give a .npy or TIFF file")
    try:
        if suffix == ".npy":
            values = np.load(path, allow_pickle=False)
        else:
            import tifffile

            values = tifffile.imread(path)
    except (OSError, ValueError) as exc:
        said = "not an array of numbers saved by numpy" if "pickle" in str(exc) else str(exc)
        raise InputError(f"calibration map {path}: not readable ({said})") from exc
    values = np.squeeze(np.asarray(values, dtype=np.float32))
    if values.ndim != 2 or not np.isfinite(values).all():
        raise InputError(f"calibration map {path}: needs one finite (Y, X) image, got shape {values.shape}")
    return values
