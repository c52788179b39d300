"""VAR's multi-scale residual quantiser over the emitter-map latent.

Scale by scale, coarse to fine: area-downsample the residual to the scale's grid, replace
each cell by its nearest code, upsample back (bicubic), refine with that scale's Phi
convolution (`quant_resi`), add to `f_hat` and subtract from the residual.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

Grids = list[tuple[int, int]]


class Phi(nn.Conv2d):
    """h -> (1 - r) h + r conv3x3(h): the residual refinement of a scale's upsampled codes."""

    def __init__(self, channels: int, ratio: float):
        super().__init__(channels, channels, kernel_size=3, padding=1)
        self.ratio = ratio

    def forward(self, h_BChw: torch.Tensor) -> torch.Tensor:
        return h_BChw * (1 - self.ratio) + super().forward(h_BChw) * self.ratio


class ResidualQuantizer(nn.Module):
    def __init__(self, vocab_size: int, cvq: int, n_scales: int, quant_resi: float = 0.5,
                 beta: float = 0.25):
        super().__init__()
        self.vocab_size, self.cvq, self.beta = vocab_size, cvq, beta
        self.codebook = nn.Embedding(vocab_size, cvq)
        nn.init.uniform_(self.codebook.weight, -1.0 / vocab_size, 1.0 / vocab_size)
        self.phis = nn.ModuleList(Phi(cvq, quant_resi) for _ in range(n_scales))
        self.register_buffer("usage_V", torch.zeros(vocab_size))  # EMA of code hits

    # ---------------------------------------------------------------- shared by every path
    def nearest(self, z_NC: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code (Euclidean) for each row of z_NC."""
        codes_VC = self.codebook.weight.detach()
        dist_NV = z_NC.square().sum(1, keepdim=True) + codes_VC.square().sum(1) - 2 * z_NC @ codes_VC.T
        return dist_NV.argmin(dim=1)

    def accumulate(self, si: int, f_hat: torch.Tensor, idx_Bhw: torch.Tensor) -> torch.Tensor:
        """f_hat + Phi_si(upsample(codes of idx_Bhw)); the residual-accumulation step."""
        h_BChw = self.codebook(idx_Bhw).permute(0, 3, 1, 2)
        if h_BChw.shape[-2:] != f_hat.shape[-2:]:
            h_BChw = F.interpolate(h_BChw, size=f_hat.shape[-2:], mode="bicubic")
        return f_hat + self.phis[si](h_BChw)

    @staticmethod
    def downsample(f_BChw: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        return f_BChw if f_BChw.shape[-2:] == grid else F.interpolate(f_BChw, size=grid, mode="area")

    # ---------------------------------------------------------------- tokenizer training
    def forward(self, f_BChw: torch.Tensor, grids: Grids):
        """Quantise f. Returns (f_hat with straight-through gradient, token maps per scale,
        VQ loss (codebook + beta * commitment), fraction of codes used in this batch)."""
        f_hat = torch.zeros_like(f_BChw)
        f_rest = f_BChw.detach().clone()
        loss = f_BChw.new_zeros(())
        idx_list = []
        for si, grid in enumerate(grids):
            idx_Bhw = self._quantize(self.downsample(f_rest, grid))
            f_new = self.accumulate(si, f_hat, idx_Bhw)
            f_rest = f_rest - (f_new - f_hat).detach()
            f_hat = f_new
            loss = loss + F.mse_loss(f_hat, f_BChw.detach()) + self.beta * F.mse_loss(f_hat.detach(), f_BChw)
            idx_list.append(idx_Bhw)
        hits = torch.cat([i.flatten() for i in idx_list]).bincount(minlength=self.vocab_size).float()
        if self.training:
            self.usage_V.mul_(0.99).add_(hits, alpha=0.01)
        f_st = f_BChw + (f_hat - f_BChw).detach()  # straight-through to the encoder
        return f_st, f_hat, idx_list, loss / len(grids), (hits > 0).float().mean()

    def _quantize(self, z_BChw: torch.Tensor) -> torch.Tensor:
        B, C, h, w = z_BChw.shape
        return self.nearest(z_BChw.permute(0, 2, 3, 1).reshape(-1, C)).view(B, h, w)

    @torch.no_grad()
    def restart_dead_codes(self, f_BChw: torch.Tensor, threshold: float = 1e-3) -> int:
        """Move codes hit less than `threshold` (EMA) onto random latent vectors."""
        dead = (self.usage_V < threshold).nonzero().flatten()
        if dead.numel() == 0:
            return 0
        pool = f_BChw.permute(0, 2, 3, 1).reshape(-1, self.cvq)
        pick = torch.randint(0, pool.shape[0], (dead.numel(),), device=pool.device)
        self.codebook.weight[dead] = pool[pick] + 1e-3 * torch.randn_like(pool[pick])
        self.usage_V[dead] = 1.0
        return int(dead.numel())

    # ---------------------------------------------------------------- transformer training
    @torch.no_grad()
    def tokens(self, f_BChw: torch.Tensor, grids: Grids) -> list[torch.Tensor]:
        """Ground-truth token maps (B, h, w) per scale."""
        return self.forward(f_BChw, grids)[2]

    def teacher_inputs(self, idx_list: list[torch.Tensor], grids: Grids, latent_hw) -> torch.Tensor:
        """(B, L - l0, Cvq): for scales 1..S-1, f_hat of all coarser true tokens, area-pooled
        to that scale's grid (VAR's idxBl_to_var_input)."""
        B = idx_list[0].shape[0]
        f_hat = self.codebook.weight.new_zeros(B, self.cvq, *latent_hw)
        inputs = []
        for si in range(len(grids) - 1):
            f_hat = self.accumulate(si, f_hat, idx_list[si])
            inputs.append(self.downsample(f_hat, grids[si + 1]).flatten(2).transpose(1, 2))
        return torch.cat(inputs, dim=1)

    def f_hats(self, idx_list: list[torch.Tensor], latent_hw) -> list[torch.Tensor]:
        """f_hat after each scale (B, Cvq, *latent_hw), from token maps."""
        f_hat = self.codebook.weight.new_zeros(idx_list[0].shape[0], self.cvq, *latent_hw)
        out = []
        for si, idx in enumerate(idx_list):
            f_hat = self.accumulate(si, f_hat, idx)
            out.append(f_hat)
        return out

    # ---------------------------------------------------------------- inference
    def next_input(self, si: int, f_hat: torch.Tensor, idx_Bhw: torch.Tensor, grids: Grids):
        """Add scale si's tokens to f_hat; return (f_hat, next scale's input (B, l, Cvq) or None)
        (VAR's get_next_autoregressive_input)."""
        f_hat = self.accumulate(si, f_hat, idx_Bhw)
        if si == len(grids) - 1:
            return f_hat, None
        return f_hat, self.downsample(f_hat, grids[si + 1]).flatten(2).transpose(1, 2)
