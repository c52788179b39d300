"""Camera description and the ADU <-> photon conversion.

photons = (ADU - baseline) * e_per_adu / em_gain / qe

"photons" are photons reaching the sensor; detected photo-electrons are photons * qe.
With qe = 1 (the default) the two are the same, as in ThunderSTORM and SMAP.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import InputError

CAMERA_TYPES = ("EMCCD", "sCMOS")


@dataclasses.dataclass(frozen=True)
class Camera:
    """Physical camera parameters. Units are in the field names."""

    pixel_size_nm: float = 100.0
    baseline_adu: float = 100.0
    e_per_adu: float = 1.0
    em_gain: float = 1.0
    qe: float = 1.0
    read_noise_e: float = 1.0
    type: str = "sCMOS"

    def __post_init__(self) -> None:
        problems = []
        if not self.pixel_size_nm > 0:
            problems.append(f"pixel_size_nm must be > 0, got {self.pixel_size_nm}")
        if not self.e_per_adu > 0:
            problems.append(f"e_per_adu must be > 0, got {self.e_per_adu}")
        if not self.em_gain >= 1:
            problems.append(f"em_gain must be >= 1 (1 = no EM gain), got {self.em_gain}")
        if not 0 < self.qe <= 1:
            problems.append(f"qe must be in (0, 1], got {self.qe}")
        if not self.read_noise_e >= 0:
            problems.append(f"read_noise_e must be >= 0, got {self.read_noise_e}")
        if not np.isfinite(self.baseline_adu):
            problems.append(f"baseline_adu must be finite, got {self.baseline_adu}")
        if self.type not in CAMERA_TYPES:
            problems.append(f"type must be one of {CAMERA_TYPES}, got {self.type!r}")
        elif self.type == "sCMOS" and self.em_gain != 1:
            problems.append(f"an sCMOS camera has no EM gain, got em_gain={self.em_gain}")
        if problems:
            raise InputError("invalid camera: " + "; ".join(problems))

    @property
    def excess_noise_factor(self) -> float:
        """Variance multiplier of EM amplification: 2 for an EMCCD with gain, else 1."""
        return 2.0 if self.em_gain > 1 else 1.0

    def adu_to_photons(self, adu: Any) -> np.ndarray:
        """Camera counts (ADU, any shape) -> photons (float32, same shape)."""
        adu = np.asarray(adu, dtype=np.float32)
        return (adu - np.float32(self.baseline_adu)) * np.float32(
            self.e_per_adu / self.em_gain / self.qe
        )

    def photons_to_adu(self, photons: Any) -> np.ndarray:
        """Photons (any shape) -> noise-free camera counts (float32, ADU)."""
        photons = np.asarray(photons, dtype=np.float32)
        return photons * np.float32(self.qe * self.em_gain / self.e_per_adu) + np.float32(
            self.baseline_adu
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Camera:
        """Build from a mapping; unknown keys are an error (they are usually typos)."""
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise InputError(f"unknown camera field(s): {sorted(unknown)}")
        return cls(**dict(values))


def resolve_camera(
    *sources: Mapping[str, Any], context: str = "camera", warn: bool = True
) -> Camera:
    """Merge partial camera values, later sources winning (e.g. file metadata, then CLI).

    Values that are None count as missing. A field given by no source falls back to the
    default of `Camera` with a warning that names it, so a silent default never hides.
    """
    merged: dict[str, Any] = {}
    for source in sources:
        merged.update({k: v for k, v in source.items() if v is not None})
    fields = {f.name: f.default for f in dataclasses.fields(Camera)}
    missing = [name for name in fields if name not in merged]
    if missing and warn:
        defaults = ", ".join(f"{name}={fields[name]!r}" for name in missing)
        warnings.warn(f"{context}: not given, using defaults: {defaults}", stacklevel=2)
    if "em_gain" in merged and "type" not in merged and float(merged["em_gain"]) > 1:
        merged["type"] = "EMCCD"
    return Camera.from_dict(merged)


def frames_to_photons(frames_adu: Any, camera: Camera, first_frame: int = 0) -> np.ndarray:
    """(T, Y, X) ADU -> photons (float32); NaN or inf is an error naming the frame."""
    photons = camera.adu_to_photons(frames_adu)
    bad = ~np.isfinite(photons).reshape(len(photons), -1).all(axis=1)
    if bad.any():
        raise InputError(f"frame {first_frame + int(np.argmax(bad))} (0-based) contains NaN or inf")
    return photons
