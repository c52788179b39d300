"""Training losses: tokenizer reconstruction, per-scale token cross-entropy with a
progressive schedule, per-scale probability maps, and the localisation head."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ..model.head import BACKGROUND, BACKGROUND_SCALE, DX, DY, LOGIT, PHOTONS, SIG_DX, SIG_DY, SIG_PHOTONS, SIG_Z, Z
from ..model.targets import occupancy_at


class ProgressiveScaleWeights:
    """Per-scale loss weights that move from coarse-heavy to the configured final weights.

    At progress t in [0, 1] (set with `set_epoch(step, total)`), weight_s =
    (1 - t) * reversed(final)_s + t * final_s; with progressive=False, always final.
    """

    def __init__(self, final: tuple[float, ...], progressive: bool = True):
        self.final = torch.tensor(final, dtype=torch.float32)
        self.progressive = progressive
        self.t = 1.0 if not progressive else 0.0

    def set_epoch(self, step: int, total: int) -> None:
        if self.progressive:
            self.t = min(1.0, step / max(total, 1))

    @property
    def weights(self) -> torch.Tensor:
        return (1 - self.t) * self.final.flip(0) + self.t * self.final


def occupancy_bce(logit_B1HW, occupancy_B1HW) -> torch.Tensor:
    """BCE summed over cells, per emitter (so sparse maps are not swamped by empty cells)."""
    total = F.binary_cross_entropy_with_logits(logit_B1HW, occupancy_B1HW, reduction="sum")
    return total / (occupancy_B1HW.sum() + 1.0)


def tokenizer_loss(pred_map, target_map, vq_loss):
    """Reconstruction of the sparse emitter map + VQ loss. Returns (total, parts)."""
    occupancy = target_map[:, :1]
    detect = occupancy_bce(pred_map[:, :1], occupancy)
    values = ((pred_map[:, 1:] - target_map[:, 1:]) ** 2 * occupancy).sum() / (occupancy.sum() + 1.0)
    return detect + values + vq_loss, {"tok_detect": detect, "tok_values": values, "vq": vq_loss}


def token_loss(logits_BLV, idx_list, weights: torch.Tensor):
    """Weighted mean over scales of each scale's cross-entropy; also per-scale accuracy."""
    targets = torch.cat([i.flatten(1) for i in idx_list], dim=1)
    lengths = [i[0].numel() for i in idx_list]
    ce = F.cross_entropy(logits_BLV.transpose(1, 2), targets, reduction="none")
    hit = (logits_BLV.argmax(-1) == targets).float()
    per_scale = [c.mean() for c in ce.split(lengths, dim=1)]
    accuracy = [a.mean() for a in hit.split(lengths, dim=1)]
    total = sum(w * c for w, c in zip(weights, per_scale)) / weights.sum()
    return total, per_scale, accuracy


def scale_map_loss(probs, occupancy_B1HW, weights: torch.Tensor):
    """BCE of each scale's probability map against 'this cell holds an emitter'."""
    losses = [F.binary_cross_entropy(p.clamp(1e-6, 1 - 1e-6), occupancy_at(occupancy_B1HW, p.shape[-2:]))
              for p in probs]
    return sum(w * loss for w, loss in zip(weights, losses)) / weights.sum(), losses


def localisation_loss(head_BKHW, dense_target, background_BHW, with_z: bool):
    """Detection BCE + Gaussian NLL of dx, dy, photons (, z) in the 3x3 cells around each
    emitter + MSE of the local background map (photons/px on the camera grid, each pixel's
    value for its upscale x upscale output cells; the head predicts it / BACKGROUND_SCALE)."""
    occupancy = dense_target[:, :1]
    detect = occupancy_bce(head_BKHW[:, LOGIT:LOGIT + 1], occupancy)
    near = F.max_pool2d(occupancy, 3, stride=1, padding=1)
    mean = head_BKHW[:, [DX, DY, PHOTONS] + ([Z] if with_z else [])]
    log_sigma = head_BKHW[:, [SIG_DX, SIG_DY, SIG_PHOTONS] + ([SIG_Z] if with_z else [])].clamp(-6, 4)
    truth = dense_target[:, [1, 2, 3] + ([4] if with_z else [])]
    nll = ((mean - truth) ** 2 / (2 * torch.exp(2 * log_sigma)) + log_sigma) * near
    nll = nll.sum() / (near.sum() + 1.0)
    known = torch.isfinite(background_BHW).flatten(1).all(dim=1)  # labelled user data may not know it
    background = head_BKHW.new_zeros(())
    if known.any():
        upscale = head_BKHW.shape[-1] // background_BHW.shape[-1]
        target = background_BHW[known].repeat_interleave(upscale, -2).repeat_interleave(upscale, -1)
        background = F.mse_loss(head_BKHW[known, BACKGROUND], target / BACKGROUND_SCALE)
    return detect + nll + background, {"loc_detect": detect, "loc_nll": nll, "loc_bg": background}
