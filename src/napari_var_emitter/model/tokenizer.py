"""Emitter tokenizer: emitter map (output grid) <-> multi-scale tokens.

encoder: map (B, C_map, H_o, W_o) -> latent (B, Cvq, H_o / d, W_o / d), d = latent_down
quantizer: VAR residual quantisation over the scales' grids
decoder: f_hat -> features on the camera grid (B, C, H_o / upscale, W_o / upscale), which the
localisation head reads, -> map prediction (B, C_map, H_o, W_o) (channel 0: occupancy logit).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .config import ModelConfig
from .layers import ResBlock, conv_stack
from .quantizer import Grids, ResidualQuantizer

OCCUPANCY_PRIOR_LOGIT = -6.0  # occupied cells are rare


def _up_stages(channels: int, n: int) -> list[nn.Module]:
    return [nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(channels, channels, 3, padding=1),
                          ResBlock(channels)) for _ in range(n)]


class EmitterTokenizer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        c, n_down = config.tokenizer_channels, int(math.log2(config.latent_down))
        n_final = int(math.log2(config.upscale))
        # space-to-depth first, so no convolution runs on the fine output grid
        self.encoder = nn.Sequential(
            nn.PixelUnshuffle(config.upscale), conv_stack(config.map_channels * config.upscale**2, c, 1),
            *(nn.Sequential(nn.Conv2d(c, c, 4, stride=2, padding=1), ResBlock(c))
              for _ in range(n_down - n_final)),
            nn.Conv2d(c, config.cvq, 1),
        )
        self.quantizer = ResidualQuantizer(config.vocab_size, config.cvq, len(config.patch_nums),
                                           config.quant_resi, config.beta)
        self.decoder = nn.Sequential(conv_stack(config.cvq, c, 1), *_up_stages(c, n_down - n_final))
        self.to_map = nn.Sequential(nn.Conv2d(c, config.map_channels * config.upscale**2, 1),
                                    nn.PixelShuffle(config.upscale))
        with torch.no_grad():
            self.to_map[0].bias.view(config.map_channels, -1)[0] = OCCUPANCY_PRIOR_LOGIT

    def encode(self, map_BCHW: torch.Tensor) -> torch.Tensor:
        """Latent (B, Cvq, h, w), each cell's vector l2-normalised: a fixed scale keeps the
        residual quantiser from chasing a drifting latent."""
        return F.normalize(self.encoder(map_BCHW), dim=1)

    def decode(self, f_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(camera-grid features, output-grid map prediction)."""
        features = self.decoder(f_hat)
        return features, self.to_map(features)

    def decode_features(self, f_hat: torch.Tensor) -> torch.Tensor:
        """Camera-grid features only (what the localisation head needs)."""
        return self.decoder(f_hat)

    # only used in tokenizer training
    def forward(self, map_BCHW: torch.Tensor, grids: Grids):
        """Returns (map prediction, VQ loss, code usage fraction, token maps)."""
        f_st, _, idx_list, vq_loss, usage = self.quantizer(self.encode(map_BCHW), grids)
        return self.decode(f_st)[1], vq_loss, usage, idx_list


def tokenizer_maps(map_BCHW: torch.Tensor) -> dict[str, torch.Tensor]:
    """Name the decoder's map channels (each (B, H_o, W_o)): occupancy probability, dx, dy,
    photons (, z), in the units of targets.py."""
    maps = {"prob": torch.sigmoid(map_BCHW[:, 0]), "dx": map_BCHW[:, 1], "dy": map_BCHW[:, 2],
            "photons": map_BCHW[:, 3]}
    if map_BCHW.shape[1] > 4:
        maps["z"] = map_BCHW[:, 4]
    return maps
