"""Training configuration: JSON with `model`, `training` and `simulation` sections."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ..config_tree import build_dataclass
from ..errors import InputError
from ..model.config import ModelConfig


@dataclasses.dataclass(frozen=True)
class SimulationRanges:
    """Conditions drawn uniformly per training batch (density uniformly in its logarithm with
    density_sampling "log-uniform"); the model card states them."""

    pixel_size_nm: float = 100.0
    psf_sigma_nm: tuple[float, float] = (100.0, 160.0)
    photons_mean: tuple[float, float] = (800.0, 6000.0)
    background_photons: tuple[float, float] = (10.0, 120.0)
    density_per_um2: tuple[float, float] = (0.05, 3.0)
    density_sampling: str = "uniform"
    emccd_fraction: float = 0.5

    def __post_init__(self) -> None:
        for field in ("psf_sigma_nm", "photons_mean", "background_photons", "density_per_um2"):
            low, high = getattr(self, field)
            object.__setattr__(self, field, (float(low), float(high)))
        if self.density_sampling not in ("uniform", "log-uniform"):
            raise InputError("simulation.density_sampling must be uniform or log-uniform, "
                             f"got {self.density_sampling!r}")


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale_weights", tuple(float(w) for w in self.scale_weights))


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    simulation: SimulationRanges = SimulationRanges()

    def __post_init__(self) -> None:
        if len(self.training.scale_weights) != len(self.model.patch_nums):
            raise InputError("training.scale_weights needs one weight per model.patch_nums scale")

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
