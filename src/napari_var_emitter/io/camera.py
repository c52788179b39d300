"""Camera description, the one rule that merges partial camera values, and the ADU <-> photon
conversion.

photons = (ADU - baseline) * e_per_adu / em_gain / qe

"photons" are photons reaching the sensor; detected photo-electrons are photons * qe.
With qe = 1 (the default) the two are the same, as in ThunderSTORM and SMAP. An sCMOS camera
may add per-pixel calibration maps (io/pixel_calibration.py): offset and gain per pixel then
replace baseline_adu and e_per_adu, and pixels with high read noise are quietened.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

CAMERA_TYPES = ("EMCCD", "sCMOS")
EMCCD_ONLY = ("em_gain",)  # fields that mean nothing for an sCMOS camera
MAP_FIELDS = ("offset_map", "variance_map", "gain_map")  # per-pixel calibration files (sCMOS)
NUMBER_FIELDS = ("pixel_size_nm", "baseline_adu", "e_per_adu", "em_gain", "qe", "read_noise_e")


@dataclasses.dataclass(frozen=True)
class FieldInfo:
    """How a camera field is shown to a user: label with unit, and what it is / where to find it."""

    label: str
    help: str


FIELD_INFO = {
    "pixel_size_nm": FieldInfo("pixel size [nm]", "Size of one camera pixel in the sample plane: the camera's pixel "
                               "pitch divided by the total magnification (e.g. 6.5 µm / 60x = 108 nm). Typical "
                               "60-200 nm."),
    "baseline_adu": FieldInfo("baseline [ADU]", "Camera offset: the mean count of a dark pixel (cap on, no light). "
                              "From the camera's test sheet or a dark stack's mean. Typical 100 (sCMOS), "
                              "100-500 (EMCCD)."),
    "e_per_adu": FieldInfo("gain [e⁻/ADU]", "Photo-electrons per camera count (conversion factor, 'sensitivity'). "
                           "Sheets that give ADU per e⁻ mean its inverse: type that number into 'gain [ADU/e⁻]'. "
                           "Typical 0.2-0.5 (sCMOS), 5-15 (EMCCD, before EM gain)."),
    "adu_per_e": FieldInfo("gain [ADU/e⁻]", "Camera counts per photo-electron, the inverse of e⁻/ADU "
                           "(storm-analysis and many camera sheets state this one). Typical 2-5 (sCMOS)."),
    "em_gain": FieldInfo("EM gain", "Electron-multiplying gain set in the acquisition software (EMCCD only). "
                         "Typical 50-300; 1 means no EM gain."),
    "qe": FieldInfo("quantum efficiency [0-1]", "Fraction of photons that become photo-electrons at your "
                    "emission wavelength, from the camera's QE curve. Leave 1 to count detected "
                    "photo-electrons as photons (as ThunderSTORM and SMAP do)."),
    "read_noise_e": FieldInfo("read noise [e⁻ rms]", "Read noise per pixel in electrons, from the test sheet. "
                              "Typical 1-2 (sCMOS), < 1 effective for EMCCD with EM gain."),
    "type": FieldInfo("camera type", "EMCCD (electron-multiplying CCD: Andor iXon, Photometrics Evolve) or "
                      "sCMOS (Hamamatsu ORCA, Andor Zyla, Teledyne Prime)."),
    "offset_map": FieldInfo("offset map [ADU]", "sCMOS per-pixel offset: a (Y, X) .npy or TIFF, the mean of a dark "
                            "stack (storm-analysis layout). Replaces the baseline."),
    "variance_map": FieldInfo("variance map [ADU²]", "sCMOS per-pixel read-noise variance: a (Y, X) .npy or TIFF, "
                              "the variance of a dark stack. Noisy (hot) pixels are quietened with it."),
    "gain_map": FieldInfo("gain map [ADU/e⁻]", "sCMOS per-pixel gain in ADU per e⁻: a (Y, X) .npy or TIFF "
                          "(storm-analysis layout). Replaces the gain."),
}
# how a refused value is named: as the widget labels it, and as a camera file names it
CHECKED_AS = {name: f"{info.label} ({name})" for name, info in FIELD_INFO.items()}


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
    offset_map: str | None = None
    variance_map: str | None = None
    gain_map: str | None = None

    def __post_init__(self) -> None:
        for name in NUMBER_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise InputError(f"invalid camera: {name} must be a number, got {value!r}")
        problems = [f"{CHECKED_AS[name]} must be a finite number, got {getattr(self, name)}" for name in NUMBER_FIELDS
                    if not np.isfinite(getattr(self, name))]
        if not self.pixel_size_nm > 0:
            problems.append(f"{CHECKED_AS['pixel_size_nm']} must be > 0, got {self.pixel_size_nm:g}")
        if not self.e_per_adu > 0:
            problems.append(f"{CHECKED_AS['e_per_adu']} must be > 0, got {self.e_per_adu:g}")
        if not self.em_gain >= 1:
            problems.append(f"{CHECKED_AS['em_gain']} must be >= 1 (1 = no EM gain), got {self.em_gain:g}")
        if not 0 < self.qe <= 1:
            problems.append(f"{CHECKED_AS['qe']} must be in (0, 1], got {self.qe:g}")
        if not self.read_noise_e >= 0:
            problems.append(f"{CHECKED_AS['read_noise_e']} must be >= 0, got {self.read_noise_e:g}")
        if self.type not in CAMERA_TYPES:
            problems.append(f"{CHECKED_AS['type']} must be one of {CAMERA_TYPES}, got {self.type!r}")
        elif self.type == "sCMOS" and self.em_gain != 1:
            problems.append(f"an sCMOS camera has no EM gain, got em_gain={self.em_gain:g}")
        for name in MAP_FIELDS:
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                problems.append(f"{FIELD_INFO[name].label} {path}: no such file")
        if problems:
            raise InputError("invalid camera: " + "; ".join(problems))

    @property
    def has_pixel_maps(self) -> bool:
        return any(getattr(self, name) is not None for name in MAP_FIELDS)

    def maps(self) -> dict[str, str]:
        """The per-pixel calibration files given: {field: path}."""
        return {name: getattr(self, name) for name in MAP_FIELDS if getattr(self, name) is not None}

    @property
    def excess_noise_factor(self) -> float:
        """Variance multiplier of EM amplification: 2 for an EMCCD with gain, else 1."""
        return 2.0 if self.em_gain > 1 else 1.0

    @property
    def typical_read_noise_e(self) -> float:
        """The read noise in e⁻ rms: the median over the variance map where the camera has one."""
        if self.variance_map is None:
            return self.read_noise_e
        return float(np.sqrt(np.median(self.pixel_calibration().read_variance_e2_YX())))

    def adu_to_photons(self, adu: Any) -> np.ndarray:
        """Camera counts (ADU, (..., Y, X)) -> photons (float32, same shape), through the
        per-pixel offset and gain maps where the camera has them."""
        adu = np.asarray(adu, dtype=np.float32)
        if self.has_pixel_maps:
            electrons = self.pixel_calibration().electrons(adu)
            return electrons * np.float32(1 / self.em_gain / self.qe)
        return (adu - np.float32(self.baseline_adu)) * np.float32(
            self.e_per_adu / self.em_gain / self.qe
        )

    def pixel_calibration(self):
        """The per-pixel maps (io/pixel_calibration.PixelCalibration), read once per process."""
        from .pixel_calibration import load_pixel_calibration

        return load_pixel_calibration(self.offset_map, self.variance_map, self.gain_map, self.baseline_adu,
                                      self.e_per_adu)

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


def merge_camera_values(*sources: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The one merge rule for partial camera values (file metadata, a profile, the user's
    entries), later sources winning; returns (every Camera field's value, the fields no source
    gave, which hold defaults).

    None counts as missing; `adu_per_e` is taken as 1 / e_per_adu. Within a source, an EM gain
    > 1 without a type means an EMCCD, and the type sCMOS without an EM gain means EM gain 1, so
    a later source's camera replaces an earlier one's whole (e.g. a file's EMCCD over a
    remembered sCMOS entry); calibration maps stay optional.
    """
    merged: dict[str, Any] = {}
    for source in sources:
        values = {k: v for k, v in source.items() if v is not None}
        if "adu_per_e" in values:
            adu_per_e = float(values.pop("adu_per_e"))
            if not adu_per_e > 0:
                raise InputError(f"invalid camera: adu_per_e must be > 0, got {adu_per_e}")
            values["e_per_adu"] = 1.0 / adu_per_e
        if "type" not in values and float(values.get("em_gain", 1)) > 1:
            values["type"] = "EMCCD"
        if values.get("type") == "sCMOS" and "em_gain" not in values:
            values["em_gain"] = 1.0
        merged.update(values)
    fields = {f.name: f.default for f in dataclasses.fields(Camera)}
    missing = [name for name in fields if name not in merged and name not in MAP_FIELDS
               and not (name in EMCCD_ONLY and merged.get("type", Camera.type) == "sCMOS")]
    return {**fields, **merged}, missing


def resolve_camera(
    *sources: Mapping[str, Any], context: str = "camera", warn: bool = True
) -> Camera:
    """A Camera from partial values (`merge_camera_values`, later sources winning, e.g. file
    metadata, then a profile, then the command line). A field no source gives falls back to the
    default of `Camera` with a warning that names it, so a silent default never hides."""
    values, missing = merge_camera_values(*sources)
    if missing and warn:
        defaults = ", ".join(f"{name}={values[name]!r}" for name in missing)
        warnings.warn(f"{context}: not given, using defaults: {defaults}", stacklevel=2)
    return Camera.from_dict(values)


def frames_to_photons(frames_adu: Any, camera: Camera, first_frame: int = 0) -> np.ndarray:
    """(T, Y, X) ADU -> photons (float32), noisy pixels quietened where the camera has a
    variance map; NaN or inf is an error naming the frame (1-based) and whether the file or the
    camera values put it there."""
    frames_adu = np.asarray(frames_adu)
    photons = camera.adu_to_photons(frames_adu)
    bad = ~np.isfinite(photons).reshape(len(photons), -1).all(axis=1)
    if bad.any():
        index = int(np.argmax(bad))
        if np.isfinite(frames_adu[index]).all():
            raise InputError(f"the camera values turn frame {first_frame + index + 1} into infinite photons: check "
                             f"the gain ({camera.e_per_adu:g} e⁻/ADU) and the per-pixel maps")
        raise InputError(f"frame {first_frame + index + 1} (1-based) contains NaN or inf camera counts")
    if camera.variance_map is not None:
        photons = camera.pixel_calibration().quieten_noisy_pixels(photons, camera.em_gain * camera.qe)
    return photons
