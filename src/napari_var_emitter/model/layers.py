"""Small convolutional building blocks."""

from __future__ import annotations

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
