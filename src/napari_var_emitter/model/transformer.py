"""Scale-wise transformer: AdaLN self-attention over the tokens of all scales.

A token sees its own scale and every coarser one (block-causal mask in training; a KV cache
scale by scale in inference, which is the same computation). Each generation owns its caches
(KVCache objects passed in), so threads can generate with one model at once.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class KVCache:
    """Keys and values (B, heads, L, C / heads) of the scales one block has seen so far in one
    generation (only used in inference)."""

    def __init__(self) -> None:
        self.k_BHLc: torch.Tensor | None = None
        self.v_BHLc: torch.Tensor | None = None

    def extend(self, k_BHLc: torch.Tensor, v_BHLc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append this scale's keys and values; returns all of them."""
        if self.k_BHLc is not None:
            k_BHLc = torch.cat([self.k_BHLc, k_BHLc], dim=2)
            v_BHLc = torch.cat([self.v_BHLc, v_BHLc], dim=2)
        self.k_BHLc, self.v_BHLc = k_BHLc, v_BHLc
        return k_BHLc, v_BHLc


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x_BLC: torch.Tensor, mask_LL: torch.Tensor | None, cache: KVCache | None = None) -> torch.Tensor:
        B, L, C = x_BLC.shape
        q, k, v = self.qkv(x_BLC).view(B, L, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        if cache is not None:  # inference: attend to the coarser scales' keys and values too
            k, v = cache.extend(k, v)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask_LL)
        return self.proj(out.transpose(1, 2).reshape(B, L, C))


class AdaLNBlock(nn.Module):
    """Pre-norm attention and MLP, each scaled/shifted/gated by a per-token condition."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False)
        self.attn = SelfAttention(dim, num_heads)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x_BLC, cond_BSC, level_L, mask_LL, cache: KVCache | None = None):
        """cond_BSC: one condition per scale; level_L: each token's scale index; cache: this
        block's KV cache in scale-by-scale inference."""
        g1, g2, s1, s2, b1, b2 = self.ada(cond_BSC)[:, level_L].chunk(6, dim=-1)
        x_BLC = x_BLC + (1 + g1) * self.attn(self.norm1(x_BLC) * (1 + s1) + b1, mask_LL, cache)
        return x_BLC + (1 + g2) * self.mlp(self.norm2(x_BLC) * (1 + s2) + b2)


class AdaLNHead(nn.Module):
    """Final AdaLN and projection to code logits."""

    def __init__(self, dim: int, vocab_size: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.out = nn.Linear(dim, vocab_size)

    def forward(self, x_BLC, cond_BSC, level_L):
        scale, shift = self.ada(cond_BSC)[:, level_L].chunk(2, dim=-1)
        return self.out(self.norm(x_BLC) * (1 + scale) + shift)


def token_levels(lengths: list[int], device=None) -> torch.Tensor:
    """(L,) scale index of each token."""
    return torch.cat([torch.full((n,), i, dtype=torch.long, device=device) for i, n in enumerate(lengths)])


def block_causal_mask(level_L: torch.Tensor) -> torch.Tensor:
    """(L, L) bool, True where attention is allowed: query scale >= key scale."""
    return level_L[:, None] >= level_L[None, :]


def sincos_2d(dim: int, h: int, w: int) -> torch.Tensor:
    """(h*w, dim) 2D sine-cosine position embedding (half the channels per axis)."""
    quarter = dim // 4
    freq = 1.0 / (10000 ** (torch.arange(quarter) / quarter))
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    parts = [f(axis.flatten()[:, None] * freq) for axis in (ys, xs) for f in (torch.sin, torch.cos)]
    emb = torch.cat(parts, dim=1)
    return F.pad(emb, (0, dim - emb.shape[1]))
