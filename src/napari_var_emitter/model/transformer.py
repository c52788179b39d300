"""Scale-wise transformer: AdaLN self-attention over the tokens of all scales.

A token sees its own scale and every coarser one (block-causal mask in training; a KV cache
scale by scale in inference, which is the same computation); with local windows at the fine
scales (windows.py) a fine token also sees only its own window's fine tokens. Each generation
owns its caches (KVCache objects passed in), so threads can generate with one model at once.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .windows import from_windows, to_windows


class KVCache:
    """Keys and values (B, heads, L, C / heads) of the scales one block has seen so far in one
    generation: the global scales' in raster order, the local scales' by window (B, heads,
    n_windows, l, C / heads) (only used in inference)."""

    def __init__(self) -> None:
        self.global_kv: tuple[torch.Tensor, torch.Tensor] | None = None
        self.local_kv: tuple[torch.Tensor, torch.Tensor] | None = None

    def extend_global(self, k_BHLc: torch.Tensor, v_BHLc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append a global scale's keys and values; returns all global ones."""
        self.global_kv = _append(self.global_kv, k_BHLc, v_BHLc, dim=2)
        return self.global_kv

    def extend_local(self, k_BHNlc: torch.Tensor, v_BHNlc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append a local scale's windowed keys and values; returns, per window, every global key
        and value followed by the window's local ones (B, heads, n_windows, L_g + l, C / heads)."""
        self.local_kv = _append(self.local_kv, k_BHNlc, v_BHNlc, dim=3)
        if self.global_kv is None:
            return self.local_kv
        n_windows = k_BHNlc.shape[2]
        return tuple(torch.cat([g[:, :, None].expand(-1, -1, n_windows, -1, -1), local], dim=3)
                     for g, local in zip(self.global_kv, self.local_kv))


def _append(kv, k, v, dim: int):
    return (k, v) if kv is None else (torch.cat([kv[0], k], dim=dim), torch.cat([kv[1], v], dim=dim))


def attend_windows(q_BHNlc: torch.Tensor, k_BHNLc: torch.Tensor, v_BHNLc: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(c)) v in each window (B, heads, n_windows, l | L, c), through PyTorch's
    scaled_dot_product_attention with the windows joined to the heads: its fused kernels take
    4-D inputs only, and a 5-D call falls back to the unfused one, which materialises every
    window's scores at once (about 5x slower on 2 CPU cores at 256 x 256 px frames;
    docs/benchmarks.md, "Tiles and passes on a CPU")."""
    joined = (t.flatten(1, 2) for t in (q_BHNlc, k_BHNLc, v_BHNLc))
    return F.scaled_dot_product_attention(*joined).view_as(q_BHNlc)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x_BLC: torch.Tensor, mask_LL: torch.Tensor | None, cache: KVCache | None = None,
                window: tuple[tuple[int, int], int] | None = None) -> torch.Tensor:
        """Training: the whole sequence under mask_LL. Inference: one scale's tokens with this
        generation's cache; `window` ((h, w) grid, tokens per window side) for a local scale."""
        B, L, C = x_BLC.shape
        q, k, v = self.qkv(x_BLC).view(B, L, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        if cache is None:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask_LL)
        elif window is None:  # a global scale: every coarser scale is global too
            k, v = cache.extend_global(k, v)
            out = F.scaled_dot_product_attention(q, k, v)
        else:  # a local scale: window by window, with the global scales' keys in each
            grid, t = window
            k, v = cache.extend_local(to_windows(k, grid, t), to_windows(v, grid, t))
            out = from_windows(attend_windows(to_windows(q, grid, t), k, v), grid, t)
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

    def forward(self, x_BLC, cond_BSC, level_L, mask_LL, cache: KVCache | None = None, window=None):
        """cond_BSC: one condition per scale; level_L: each token's scale index; cache and window:
        scale-by-scale inference (see SelfAttention)."""
        g1, g2, s1, s2, b1, b2 = self.ada(cond_BSC)[:, level_L].chunk(6, dim=-1)
        x_BLC = x_BLC + (1 + g1) * self.attn(self.norm1(x_BLC) * (1 + s1) + b1, mask_LL, cache, window)
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


def sincos_2d(dim: int, h: int, w: int) -> torch.Tensor:
    """(h*w, dim) 2D sine-cosine position embedding (half the channels per axis)."""
    quarter = dim // 4
    freq = 1.0 / (10000 ** (torch.arange(quarter) / quarter))
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    parts = [f(axis.flatten()[:, None] * freq) for axis in (ys, xs) for f in (torch.sin, torch.cos)]
    emb = torch.cat(parts, dim=1)
    return F.pad(emb, (0, dim - emb.shape[1]))
