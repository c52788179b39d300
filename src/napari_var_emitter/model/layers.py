"""Small convolutional building blocks."""

from __future__ import annotations

import torch
from torch import nn


class ResBlock(nn.Module):
    """x + conv(gelu(conv(gelu(norm(x)))))."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(8, channels), nn.GELU(), nn.Conv2d(channels, channels, 3, padding=1),
            nn.GELU(), nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x):
        return x + self.body(x)


def conv_stack(c_in: int, c_out: int, n_blocks: int) -> nn.Sequential:
    """3x3 conv to c_out channels, then n_blocks residual blocks (resolution kept)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), *(ResBlock(c_out) for _ in range(n_blocks)))


class UNet(nn.Module):
    """conv_stack(c_in, c_out, n_blocks) at full resolution, then `levels` times down by 2 (a
    stride-2 conv to twice the channels and n_blocks residual blocks), and back up level by level
    (a 2x2 transposed conv, the skip added, a residual block): (B, c_in, H, W) -> (B, c_out, H, W)
    with context from 2^levels times as far for the cost of about two more full-resolution stacks."""

    def __init__(self, c_in: int, c_out: int, n_blocks: int, levels: int):
        super().__init__()
        self.stem = conv_stack(c_in, c_out, n_blocks)
        widths = [c_out * 2**level for level in range(levels + 1)]
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(a, b, 3, stride=2, padding=1), *(ResBlock(b) for _ in range(n_blocks)))
            for a, b in zip(widths, widths[1:]))
        self.up = nn.ModuleList(nn.ConvTranspose2d(b, a, 2, stride=2) for a, b in zip(widths, widths[1:]))
        self.merge = nn.ModuleList(ResBlock(a) for a in widths[:-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        h = skips.pop()
        for up, merge in zip(reversed(self.up), reversed(self.merge)):
            skip = skips.pop()
            h = merge(skip + up(h)[..., :skip.shape[-2], :skip.shape[-1]])
        return h
