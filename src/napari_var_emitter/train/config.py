"""Training configuration: JSON with `model`, `training` and `simulation` sections."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..config_tree import build_dataclass
from ..errors import InputError
from ..model.config import ModelConfig
from ..psf import PSF
from ..simulate.config import STRUCTURES
from ..simulate.psf_family import CalibrationFamily


RANGE_FIELDS = ("pixel_size_nm", "psf_sigma_nm", "psf_sigma_px", "psf_halo_fraction", "photons_mean",
                "background_photons", "background_contrast", "density_per_um2", "em_gain", "scmos_read_noise_e")


@dataclasses.dataclass(frozen=True)
class SimulationRanges:
    """Conditions drawn per group of FRAMES_PER_CONDITION training frames; the model card states
    them. Each range is [low, high] (a single number: fixed), drawn uniformly, or uniformly in its
    logarithm for the fields named in `log_uniform` (the background in log(1 + photons/px), so 0
    stays in range). The PSF σ is psf_sigma_px camera pixels where given, else psf_sigma_nm.
    A `structured_background_fraction` of the groups get a structured background whose brightest
    pixel is `background_contrast` times its dimmest; a `scmos_pixel_noise_fraction` of the sCMOS
    groups get uncalibrated per-pixel offsets, read noise and hot pixels. Positions follow one of
    `structures` (simulate.config.STRUCTURES), drawn per group. density_sampling "log-uniform"
    (older cards) is density_per_um2 in log_uniform. psf_calibration (an astigmatic PSF from
    calibrate-psf): 3-D training for that microscope; every emitter is drawn at z uniform in its
    z_range_nm (narrowed to z_range_nm [low, high] nm where given) and imaged through it
    (psf_sigma_* then unused), for a model with model.with_z.
    psf_family (simulate/psf_family.py): each group draws its own calibration from the family instead,
    for a model that takes the calibration as an input (model.psf_condition); such a model
    fine-tuned to one microscope trains on its psf_calibration alone. For a model with context
    frames, an `independent_frames_fraction` of the groups have every frame simulated on its own
    (other emitters in each, as in challenge data whose frames are drawn apart), so that the network
    learns that a molecule beside a frame need not be in it; a `single_frame_fraction` are single
    images, each frame its own neighbours (as predict gives a one-frame image, and a stack's first and
    last frames their missing neighbour)."""

    pixel_size_nm: tuple[float, float] = (100.0, 100.0)
    psf_sigma_nm: tuple[float, float] = (100.0, 160.0)
    psf_sigma_px: tuple[float, float] | None = None
    psf_halo_fraction: tuple[float, float] = (0.0, 0.0)
    photons_mean: tuple[float, float] = (800.0, 6000.0)
    background_photons: tuple[float, float] = (10.0, 120.0)
    structured_background_fraction: float = 0.0
    background_contrast: tuple[float, float] = (1.0, 1.0)
    density_per_um2: tuple[float, float] = (0.05, 3.0)
    structures: tuple[str, ...] = ("uniform",)
    emccd_fraction: float = 0.5
    em_gain: tuple[float, float] = (100.0, 100.0)
    scmos_read_noise_e: tuple[float, float] = (1.5, 1.5)
    scmos_pixel_noise_fraction: float = 0.0
    independent_frames_fraction: float = 0.0
    single_frame_fraction: float = 0.0
    log_uniform: tuple[str, ...] = ()
    density_sampling: str = "uniform"
    psf_calibration: PSF | None = None
    psf_family: CalibrationFamily | None = None
    z_range_nm: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.psf_calibration is not None and not self.psf_calibration.astigmatism:
            raise InputError("simulation.psf_calibration must be an astigmatic calibration (from calibrate-psf)")
        if self.z_range_nm is not None:
            self._narrow_z_range()
        for name in ("independent_frames_fraction", "single_frame_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise InputError(f"simulation.{name} must be between 0 and 1, got {getattr(self, name)}")
        if self.psf_calibration is not None and self.psf_family is not None:
            raise InputError("give simulation.psf_calibration (one microscope) or psf_family (a conditioned model), "
                             "not both")
        for field in RANGE_FIELDS:
            value = getattr(self, field)
            if value is not None:
                low, high = (value, value) if isinstance(value, (int, float)) else value
                if not float(low) <= float(high):
                    raise InputError(f"simulation.{field} must be [low, high] with low <= high, got {value}")
                object.__setattr__(self, field, (float(low), float(high)))
        if self.density_sampling not in ("uniform", "log-uniform"):
            raise InputError("simulation.density_sampling must be uniform or log-uniform, "
                             f"got {self.density_sampling!r}")
        log_uniform = set(self.log_uniform) | ({"density_per_um2"} if self.density_sampling == "log-uniform" else set())
        unknown = log_uniform - set(RANGE_FIELDS)
        if unknown:
            raise InputError(f"simulation.log_uniform names unknown range(s) {sorted(unknown)}")
        object.__setattr__(self, "log_uniform", tuple(sorted(log_uniform)))
        bad = set(self.structures) - set(STRUCTURES)
        if bad or not self.structures:
            raise InputError(f"simulation.structures must be some of {STRUCTURES}, got {list(self.structures)}")
        object.__setattr__(self, "structures", tuple(self.structures))

    def _narrow_z_range(self) -> None:
        """Keep the calibration's valid z range within z_range_nm (a bead stack spans more than
        the depth a model should learn)."""
        low, high = (float(v) for v in self.z_range_nm)
        object.__setattr__(self, "z_range_nm", (low, high))
        if self.psf_calibration is None:
            if self.psf_family is not None:
                raise InputError("simulation.z_range_nm narrows one calibration; a psf_family has z_half_range_nm")
            return
        valid = self.psf_calibration.z_range_nm
        narrowed = (max(low, valid[0]), min(high, valid[1]))
        if not narrowed[0] < narrowed[1]:
            raise InputError(f"simulation.z_range_nm {low:g} to {high:g} nm lies outside the calibration's valid "
                             f"range ({valid[0]:.0f} to {valid[1]:.0f} nm)")
        object.__setattr__(self, "psf_calibration", dataclasses.replace(self.psf_calibration, z_range_nm=narrowed))

    def draw(self, field: str, rng: np.random.Generator) -> float:
        """One value of a range field, uniformly or uniformly in its logarithm."""
        low, high = getattr(self, field)
        if field not in self.log_uniform:
            return float(rng.uniform(low, high))
        shift = 1.0 if field == "background_photons" else 0.0
        return float(np.exp(rng.uniform(np.log(low + shift), np.log(high + shift))) - shift)


LOCALISATION_LOSSES = ("cells", "mixture")


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    tokenizer_steps: int = 4000
    steps: int = 2700
    batch_size: int = 8
    tile_px: int = 64
    lr: float = 1e-3
    tokenizer_lr: float = 2e-3
    warmup_steps: int = 300
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    scale_weights: tuple[float, ...] = (0.5, 0.7, 0.9, 1.0)
    progressive: bool = True
    eval_every: int = 500
    checkpoint_every: int = 250
    seed: int = 0
    localisation_loss: str = "cells"  # or "mixture" (train/losses.py)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale_weights", tuple(float(w) for w in self.scale_weights))
        if self.localisation_loss not in LOCALISATION_LOSSES:
            raise InputError(f"training.localisation_loss must be one of {', '.join(LOCALISATION_LOSSES)}, "
                             f"not {self.localisation_loss!r}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    simulation: SimulationRanges = SimulationRanges()

    def __post_init__(self) -> None:
        if len(self.training.scale_weights) != len(self.model.patch_nums):
            raise InputError("training.scale_weights needs one weight per model.patch_nums scale")
        simulation = self.simulation
        if self.model.with_z != (simulation.psf_calibration is not None or simulation.psf_family is not None):
            raise InputError("a 3-D model (model.with_z) trains on an astigmatic PSF calibration "
                             "(simulation.psf_calibration, or train --psf PSF.json) or a family of them "
                             "(simulation.psf_family), and only a 3-D model does")
        if simulation.psf_family is not None and not self.model.psf_condition:
            raise InputError("a family of calibrations (simulation.psf_family) trains a model that takes the "
                             "calibration as an input (model.psf_condition)")

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        return build_dataclass(cls, values)

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError(f"{path}: cannot read training config ({exc})") from exc
