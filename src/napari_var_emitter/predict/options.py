"""Every setting of a prediction run in one typed object, which the CLI, the widgets and the Dask
workers build and pass on (and a resumable run writes to its job manifest)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..config_tree import build_dataclass
from ..errors import InputError
from ..fit.refine import PHANTOM_FDR
from ..model.checkpoint import BUNDLED, BUNDLED_3D, BUNDLED_FAST, FAST
from ..model.config import DEFAULT_THRESHOLD, ModelConfig
from ..psf import PSF
from .canonical import MAX_BIN

# what --mode writes besides the localisations: every scale's map, the detection probability on
# the output grid (upscale x the camera grid), or both
MAP_MODES = ("progressive", "super_resolution", "both")


@dataclasses.dataclass(frozen=True)
class PredictOptions:
    """model: weights path (None = a bundled model: the 3-D one when psf is given, else the 2-D
    one; "fast": the bundled fast 2-D model; `weights` says which); device: cpu, cuda[:N] or auto
    (resolved when the model is loaded); threshold: detection probability integrated over 3x3 output cells; batch_size:
    frames read, and tiles run, at a time (on a CPU, no more tiles than fit in
    predict.frames.CPU_PIXELS_PER_PASS); amp: bfloat16 autocast; samples: 1 = argmax tokens,
    N = the mean of N sampled generations; tile_px / margin_px: tile core and context border in
    camera pixels (tile_px None: the model's own, predict.tiling.default_tile_px); prior_scale:
    0 zeroes the VAR prior (the ablation); output_map: keep the detection probability on the
    output grid; psf: the astigmatic PSF calibration, the input of a calibration-conditioned
    3-D model; refine: the maximum-likelihood refinement after the network (fit/refine.py),
    psf_sigma_nm the 2-D PSF sigma it fits with (None: estimated from the data), phantom_fdr
    its test against background only (0 keeps every detection); bin_px: camera pixels binned
    b x b in front of the network (0: as the PSF sigma and the model's trained range ask,
    predict.canonical; 1: never)."""

    model: str | None = None
    device: str = "cpu"
    threshold: float = DEFAULT_THRESHOLD
    batch_size: int = 4
    amp: bool = False
    samples: int = 1
    tile_px: int | None = None
    margin_px: int = 32
    prior_scale: float = 1.0
    output_map: bool = False
    psf: PSF | None = None
    refine: bool = True
    psf_sigma_nm: float | None = None
    phantom_fdr: float = PHANTOM_FDR
    bin_px: int = 0

    def __post_init__(self) -> None:
        if self.model is not None:  # "fast": the bundled fast 2-D model
            path = BUNDLED_FAST if str(self.model) == FAST else Path(self.model).resolve()
            object.__setattr__(self, "model", str(path))
        if self.samples < 1 or self.batch_size < 1:
            raise InputError("samples and batch size must be 1 or more")
        if not 0 < self.threshold < 1:
            raise InputError(f"threshold must be between 0 and 1, got {self.threshold}")
        if self.psf_sigma_nm is not None and not 0 < self.psf_sigma_nm < 1e4:
            raise InputError(f"PSF sigma must be between 0 and 10,000 nm, got {self.psf_sigma_nm}")
        if not 0 <= self.phantom_fdr < 1:
            raise InputError(f"phantom false-discovery rate must be between 0 and 1, got {self.phantom_fdr}")
        if not 0 <= self.bin_px <= MAX_BIN:
            raise InputError(f"binning must be 0 (automatic) to {MAX_BIN} pixels, got {self.bin_px}")
        if (self.tile_px is not None and self.tile_px < 1) or self.margin_px < 0:
            raise InputError("tile_px must be >= 1 and margin_px >= 0")

    @property
    def weights(self) -> Path:
        """The weights file this run uses: the model given, else the bundled 3-D model for a
        PSF calibration and the bundled 2-D model without one."""
        if self.model is not None:
            return Path(self.model)
        return BUNDLED_3D if self.psf is not None else BUNDLED

    def check_model(self, config: ModelConfig) -> None:
        """InputError when the model and the calibration do not go together: a 2-D model given
        a PSF calibration, or a 3-D model given none (the CLI and the widgets check before any work)."""
        if self.psf is not None and not config.with_z:
            raise InputError(f"{self.weights} is a 2-D model; for 3-D, leave the model out (the bundled 3-D model) "
                             "or give one from `var-emitter train --psf`")
        if self.psf is None and config.with_z:
            raise InputError(f"{self.weights} is a 3-D model: give the PSF calibration of your microscope "
                             "(--psf PSF.json, from calibrate-psf; in napari, use the 3-D astigmatic widget)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PredictOptions:
        """Inverse of to_dict; unknown keys are an InputError."""
        return build_dataclass(cls, values)
