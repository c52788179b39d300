"""The localisation head's output channels: their order, their scales, and their names.

Channels of the head output (B, K, H_o, W_o) on the output grid: detection logit, dx, dy (cells
from the cell centre), photons (log1p(photons / PHOTON_SCALE), see targets.py), background
(photons/px / BACKGROUND_SCALE), log-sigma of dx, dy and photons; with a 3D PSF then z
(nm / Z_SCALE_NM) and its log-sigma.
"""

from __future__ import annotations

import torch

LOGIT, DX, DY, PHOTONS, BACKGROUND, SIG_DX, SIG_DY, SIG_PHOTONS, Z, SIG_Z = range(10)
HEAD_CHANNELS_2D = 8
HEAD_CHANNELS_3D = 10
BACKGROUND_SCALE = 100.0  # the head predicts background photons/px divided by this


def head_channels(with_z: bool) -> int:
    return HEAD_CHANNELS_3D if with_z else HEAD_CHANNELS_2D


def head_maps(head_BKHW: torch.Tensor) -> dict[str, torch.Tensor]:
    """Name the localisation head's channels (each (B, H, W)), in physical units where they have
    one (background in photons/px, never below 0; sigmas of dx, dy in cells; z and its sigma in
    nm / Z_SCALE_NM)."""
    maps = {
        "prob": torch.sigmoid(head_BKHW[:, LOGIT]), "dx": head_BKHW[:, DX], "dy": head_BKHW[:, DY],
        "photons": head_BKHW[:, PHOTONS], "background": (head_BKHW[:, BACKGROUND] * BACKGROUND_SCALE).clamp(min=0),
        "sigma_dx": torch.exp(head_BKHW[:, SIG_DX]), "sigma_dy": torch.exp(head_BKHW[:, SIG_DY]),
    }
    if head_BKHW.shape[1] > Z:
        maps["z"], maps["sigma_z"] = head_BKHW[:, Z], torch.exp(head_BKHW[:, SIG_Z])
    return maps
