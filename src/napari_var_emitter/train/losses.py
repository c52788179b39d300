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


# cells: each true emitter's mixture runs over the (2R + 1)² output cells around it, the window
# find_detections integrates probability over (with R = 3 one emitter's probability spread over
# 7x7 cells: 0.4 in the 3x3 around it after 2,700 steps, and duplicates)
MIXTURE_RADIUS = 1
LOG_SIGMA_RANGE = (-6.0, 4.0)


def localisation_loss(head_BKHW, dense_target, background_BHW, with_z: bool):
    """Detection BCE + Gaussian NLL of dx, dy, photons (, z) in the 3x3 cells around each
    emitter + MSE of the local background map (the `cells` loss)."""
    occupancy = dense_target[:, :1]
    detect = occupancy_bce(head_BKHW[:, LOGIT:LOGIT + 1], occupancy)
    near = F.max_pool2d(occupancy, 3, stride=1, padding=1)
    mean = head_BKHW[:, [DX, DY, PHOTONS] + ([Z] if with_z else [])]
    log_sigma = head_BKHW[:, [SIG_DX, SIG_DY, SIG_PHOTONS] + ([SIG_Z] if with_z else [])].clamp(*LOG_SIGMA_RANGE)
    truth = dense_target[:, [1, 2, 3] + ([4] if with_z else [])]
    nll = ((mean - truth) ** 2 / (2 * torch.exp(2 * log_sigma)) + log_sigma) * near
    nll = nll.sum() / (near.sum() + 1.0)
    background = background_loss(head_BKHW, background_BHW)
    return detect + nll + background, {"loc_detect": detect, "loc_nll": nll, "loc_bg": background}


def mixture_localisation_loss(head_BKHW, sparse_target, background_BHW, with_z: bool):
    """The `mixture` loss, detection first (DECODE's, Speiser et al. 2021, on the output grid):
    the number of emitters in each tile against the sum of its cells' detection probabilities
    p (Gaussian NLL, mean sum p, variance sum p(1 - p) + 1); and each true emitter's position,
    photons (, z) under the mixture of the cells' Gaussians around it (MIXTURE_RADIUS), each
    weighted by p / sum p of its tile: no cell is told it must be the one that fires, two
    emitters 100-200 nm apart are two components; + MSE of the background map.
    sparse_target (B, C, H, W): occupancy and the emitter's dx, dy, photons (, z) in its own
    cell (render_target, dense=False)."""
    logit = head_BKHW[:, LOGIT]
    prob = torch.sigmoid(logit)
    count = sparse_target[:, 0].flatten(1).sum(1)
    # the variance of the count, plus one emitter's worth: where the probabilities saturate (0 or 1)
    # and the count is wrong the bare variance vanishes (the loss reached several hundred in a step)
    expected, variance = prob.flatten(1).sum(1), (prob * (1 - prob)).flatten(1).sum(1) + 1.0
    count_nll = ((count - expected) ** 2 / (2 * variance) + 0.5 * torch.log(variance)).mean()
    b, r, c = torch.nonzero(sparse_target[:, 0] > 0.5, as_tuple=True)
    if not len(b):
        mixture = head_BKHW.new_zeros(())
    else:
        offsets = torch.arange(-MIXTURE_RADIUS, MIXTURE_RADIUS + 1, device=head_BKHW.device)
        dr, dc = (o.flatten() for o in torch.meshgrid(offsets, offsets, indexing="ij"))  # (W,) each
        rows, cols = r[:, None] + dr, c[:, None] + dc  # (E, W) the cells around each emitter
        height, width = logit.shape[-2:]
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        cells_EWK = head_BKHW.permute(0, 2, 3, 1)[b[:, None], rows.clamp(0, height - 1), cols.clamp(0, width - 1)]
        mean = cells_EWK[..., [DX, DY, PHOTONS] + ([Z] if with_z else [])]  # (E, W, D)
        shift = torch.zeros_like(mean)
        shift[..., 0], shift[..., 1] = dc.to(mean.dtype), dr.to(mean.dtype)  # a cell's dx is from its own centre
        log_sigma = cells_EWK[..., [SIG_DX, SIG_DY, SIG_PHOTONS] + ([SIG_Z] if with_z else [])].clamp(*LOG_SIGMA_RANGE)
        truth = sparse_target[b, :, r, c][:, [1, 2, 3] + ([4] if with_z else [])]  # (E, D)
        standardised = (truth[:, None] - mean - shift) / torch.exp(log_sigma)
        component = F.logsigmoid(cells_EWK[..., LOGIT]) - (0.5 * standardised ** 2 + log_sigma).sum(-1)
        component = component.masked_fill(~inside, float("-inf"))
        mixture = -(torch.logsumexp(component, 1) - torch.log(expected[b].clamp(min=1e-6))).mean()
    background = background_loss(head_BKHW, background_BHW)
    return count_nll + mixture + background, {"loc_count": count_nll, "loc_mixture": mixture, "loc_bg": background}


def background_loss(head_BKHW, background_BHW):
    """MSE of the head's local background map against the truth (photons/px on the camera grid,
    each pixel's value for its upscale x upscale output cells; the head predicts it /
    BACKGROUND_SCALE); 0 where no tile of the batch knows it (labelled user data)."""
    known = torch.isfinite(background_BHW).flatten(1).all(dim=1)
    if not known.any():
        return head_BKHW.new_zeros(())
    upscale = head_BKHW.shape[-1] // background_BHW.shape[-1]
    target = background_BHW[known].repeat_interleave(upscale, -2).repeat_interleave(upscale, -1)
    return F.mse_loss(head_BKHW[known, BACKGROUND], target / BACKGROUND_SCALE)
