"""Model hyper-parameters (the `model` section of a training config)."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import InputError

# detection probability (3x3-integrated) kept by default; chosen on validation stacks
# (seeds 7,000,000+, not the benchmark's), see docs/benchmarks.md
DEFAULT_THRESHOLD = 0.3


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """`patch_nums` are tokens per side of each scale for a `reference_frame_px` frame, so
    the token stride of scale s is reference_frame_px / patch_nums[s] camera pixels; any tile
    whose sides are multiples of the coarsest stride works. The emitter map (output grid) is
    `upscale` times the camera grid. window_px > 0: the fine scales attend within windows of
    window_px camera pixels (model/windows.py); 0: every scale attends over the whole tile (v1).
    image_channels, tokenizer_channels and head_width are the widths of the convolutions that run
    on the camera grid (most of the CPU cost of a large frame); encoder_levels > 0 makes the image
    encoder a U-Net that also works at 1/2, ..., 1/2^levels of that grid (layers.UNet; 0: one
    stack at camera resolution, v1 and the first no-VAR baseline). var_prior False: the no-VAR
    baseline, the same image encoder and localisation head without tokenizer and transformer.
    with_z: a 3-D model (z and its sigma from the head); psf_condition: it takes the PSF
    calibration as an input (model/condition.py), added to the image features, so one model
    serves every calibration of the family it was trained on. context_frames k > 0: the network
    sees the k frames before and after each frame beside it (a temporal window: an emitter on
    across frames is seen in its neighbours too; the frame is channel 0 of its input)."""

    patch_nums: tuple[int, ...] = (5, 10, 20, 40)
    reference_frame_px: int = 160
    upscale: int = 2
    vocab_size: int = 1024
    cvq: int = 32
    embed_dim: int = 128
    num_heads: int = 4
    num_layers: int = 4
    mlp_ratio: float = 4.0
    image_channels: int = 32
    tokenizer_channels: int = 48
    head_width: int = 48
    quant_resi: float = 0.5
    beta: float = 0.25
    with_z: bool = False
    window_px: int = 0
    var_prior: bool = True
    psf_condition: bool = False
    encoder_levels: int = 0
    context_frames: int = 0

    def __post_init__(self) -> None:
        if self.psf_condition and not self.with_z:
            raise InputError("model.psf_condition (the PSF calibration as an input) needs a 3-D model (with_z)")
        object.__setattr__(self, "patch_nums", tuple(int(p) for p in self.patch_nums))
        strides = [self.reference_frame_px / p for p in self.patch_nums]
        if any(s != int(s) for s in strides) or any(a % b for a, b in zip(strides, strides[1:])):
            raise InputError(f"patch_nums {self.patch_nums} must divide {self.reference_frame_px} "
                             "into strides that are multiples of each other")
        if self.embed_dim % self.num_heads:
            raise InputError("embed_dim must be a multiple of num_heads")
        coarsest = self.token_strides_px[0]
        if self.window_px < 0 or (self.window_px and coarsest % self.window_px):
            raise InputError(f"window_px must be 0 (global attention) or divide the coarsest stride "
                             f"{coarsest} px, got {self.window_px}")
        if self.encoder_levels < 0:
            raise InputError(f"encoder_levels must be 0 or more, got {self.encoder_levels}")
        if self.context_frames < 0:
            raise InputError(f"context_frames must be 0 or more, got {self.context_frames}")
        down = self.token_strides_px[-1] * self.upscale
        if down & (down - 1):
            raise InputError(f"finest stride x upscale must be a power of two, got {down}")

    @property
    def token_strides_px(self) -> tuple[int, ...]:
        """Camera pixels per token side at each scale, coarse to fine."""
        return tuple(self.reference_frame_px // p for p in self.patch_nums)

    @property
    def input_frames(self) -> int:
        """Frames per input of the network: the frame and its context on both sides."""
        return 1 + 2 * self.context_frames

    @property
    def latent_down(self) -> int:
        """Output-grid cells per side of one finest-scale token (the tokenizer's down factor)."""
        return self.token_strides_px[-1] * self.upscale

    @property
    def map_channels(self) -> int:
        """Emitter-map channels: occupancy, dx, dy, photons (, z)."""
        return 5 if self.with_z else 4

    def grids(self, height_px: int, width_px: int) -> list[tuple[int, int]]:
        """(h, w) tokens per scale for a tile of height_px x width_px camera pixels."""
        coarsest = self.token_strides_px[0]
        if height_px % coarsest or width_px % coarsest:
            raise InputError(f"tile {height_px}x{width_px} px is not a multiple of {coarsest} px")
        return [(height_px // s, width_px // s) for s in self.token_strides_px]

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "patch_nums": list(self.patch_nums)}
