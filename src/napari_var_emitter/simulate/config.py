"""Simulation parameters: one dataclass tree, read from JSON/YAML and `--set` overrides.

In a config file any numeric parameter may be written {"uniform": [low, high]}: each sample
of a dataset then draws its own value, recorded in batch_status.json.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..config_tree import build_dataclass
from ..errors import InputError
from ..io.camera import Camera
from ..psf import PSF

STRUCTURES = ("uniform", "filaments", "rings", "line_pairs", "clusters", "close_pairs")


@dataclasses.dataclass(frozen=True)
class StructureConfig:
    """Where fluorophores sit: uniformly, on worm-like filaments, on rings, on straight
    pairs of parallel lines `pair_spacing_nm` apart (n_filaments pairs, filament_length_nm long:
    a structure of known spacing for resolution checks), in n_clusters Gaussian clusters of
    standard deviation cluster_sd_nm, or uniformly with close partners: a partner_fraction of the
    fluorophores have a partner partner_distance_nm away in x-y (drawn uniformly in [low, high], at a
    random angle; its own depth under an astigmatic PSF) that blinks with it (a dimer), so that
    frames hold the pairs a network must resolve (the density stays that of emitters on per frame,
    partners included)."""

    kind: str = "uniform"
    n_filaments: int = 6
    filament_length_nm: float = 8000.0
    persistence_length_nm: float = 3000.0
    n_rings: int = 40
    ring_radius_nm: tuple[float, float] = (100.0, 300.0)
    label_sd_nm: float = 5.0
    pair_spacing_nm: float = 50.0
    n_clusters: int = 20
    cluster_sd_nm: float = 100.0
    partner_fraction: float = 0.5
    partner_distance_nm: tuple[float, float] = (80.0, 250.0)

    def __post_init__(self) -> None:
        if self.kind not in STRUCTURES:
            raise InputError(f"structure.kind must be one of {STRUCTURES}, got {self.kind!r}")
        object.__setattr__(self, "ring_radius_nm", tuple(float(v) for v in self.ring_radius_nm))
        low, high = (float(v) for v in self.partner_distance_nm)
        if not 0 <= low <= high or not 0 <= self.partner_fraction <= 1:
            raise InputError("structure: partner_distance_nm must be [low, high] with 0 <= low <= high and "
                             f"partner_fraction within 0 to 1, got {self.partner_distance_nm}, {self.partner_fraction}")
        object.__setattr__(self, "partner_distance_nm", (low, high))


@dataclasses.dataclass(frozen=True)
class KineticsConfig:
    """Blinking: on and off periods are exponential (mean in frames); the number of on
    periods before bleaching is geometric with mean `blinks_mean`."""

    on_time_frames: float = 3.0
    off_time_frames: float = 10.0
    blinks_mean: float = 2.0

    def __post_init__(self) -> None:
        if min(self.on_time_frames, self.off_time_frames) <= 0 or self.blinks_mean < 1:
            raise InputError("kinetics: on/off times must be > 0 and blinks_mean >= 1")


@dataclasses.dataclass(frozen=True)
class SimulationConfig:
    """One simulated stack. Densities are emitters per µm² per frame; photons are per
    emitter per fully-on frame (a blink covering part of a frame gives that fraction);
    background is photons per pixel per frame (its mean over the field; background_contrast > 1
    adds structure whose brightest pixel is that many times its dimmest)."""

    frame_size: tuple[int, int] = (160, 160)
    n_frames: int = 100
    density_per_um2: float = 1.0
    photons_mean: float = 2000.0
    photons_cv: float = 0.3
    background_photons: float = 50.0
    background_variation: float = 0.0
    background_scale_nm: float = 3000.0
    background_contrast: float = 1.0
    psf: PSF = PSF()
    structure: StructureConfig = StructureConfig()
    kinetics: KineticsConfig = KineticsConfig()
    camera: Camera = Camera()

    def __post_init__(self) -> None:
        size = self.frame_size
        size = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
        object.__setattr__(self, "frame_size", tuple(int(v) for v in size))
        if len(self.frame_size) != 2 or min(self.frame_size) < 8 or self.n_frames < 1:
            raise InputError("frame_size must be (H, W) >= 8 px and n_frames >= 1")
        if self.density_per_um2 < 0 or self.photons_mean <= 0 or self.photons_cv < 0:
            raise InputError("density must be >= 0, photons_mean > 0, photons_cv >= 0")
        if self.background_photons < 0 or not 0 <= self.background_variation <= 1:
            raise InputError("background_photons must be >= 0, background_variation in [0, 1]")
        if not 1 <= self.background_contrast <= 100:
            raise InputError(f"background_contrast (brightest / dimmest) must be in [1, 100], "
                             f"got {self.background_contrast}")

    @property
    def field_um2(self) -> float:
        """Area of one frame in µm²."""
        height, width = self.frame_size
        return height * width * (self.camera.pixel_size_nm / 1000) ** 2

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SimulationConfig:
        return build_dataclass(cls, values)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON or YAML config file into a plain dict."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read config ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: config must be a mapping at the top level")
    return data


def apply_overrides(values: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """Apply `dotted.key=value` assignments (value parsed as JSON, else kept as text)."""
    values = copy.deepcopy(values)
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep:
            raise InputError(f"--set expects key=value, got {assignment!r}")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        *parents, leaf = key.strip().split(".")
        node = values
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return values


def draw_parameters(values: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """Replace every {"uniform": [low, high]} with a value drawn from it."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping) and set(value) == {"uniform"}:
            low, high = value["uniform"]
            out[key] = float(rng.uniform(low, high))
        elif isinstance(value, Mapping):
            out[key] = draw_parameters(value, rng)
        else:
            out[key] = value
    return out
