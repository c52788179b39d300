"""The conditional VAR emitter predictor.

image (photons) -> image encoder (full camera resolution) -> features pooled to each scale's
grid -> scale-wise transformer predicts the emitter map's tokens coarse to fine, each scale
conditioned on the image and on all coarser scales (residual accumulation in f_hat) ->
per-scale probability maps from f_hat so far -> localisation head on the final f_hat and the
image features (output grid = `upscale` x camera grid).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .condition import CALIBRATION_FEATURES
from .config import ModelConfig
from .head import head_channels
from .layers import ResBlock, UNet, conv_stack
from .quantizer import Grids
from .tokenizer import EmitterTokenizer
from .transformer import AdaLNBlock, AdaLNHead, KVCache, sincos_2d, token_levels
from .windows import attention_mask, local_scales

PHOTON_NORM = 100.0
TRAIN_TILE_PX = 64
DETECTION_PRIOR_LOGIT = -6.0


def normalise(photons_BFHW: torch.Tensor) -> torch.Tensor:
    """(B, F, H, W) photons of a frame (channel 0) and its context frames -> (B, F + 1, H, W):
    each frame's photons above its median, and the frame's median."""
    median_BF11 = photons_BFHW.flatten(2).median(dim=2).values[..., None, None]
    return torch.cat([(photons_BFHW - median_BF11) / PHOTON_NORM,
                      (median_BF11[:, :1] / PHOTON_NORM).expand_as(photons_BFHW[:, :1])], dim=1)


class VAREmitterPredictor(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.card: dict = {}  # its model card where it was loaded from a file (load_model): what it was trained on
        c_img = config.image_channels
        levels, c_in = config.encoder_levels, config.input_frames + 1  # normalise's channels
        self.image_encoder = UNet(c_in, c_img, 2, levels) if levels else conv_stack(c_in, c_img, 2)
        if config.psf_condition:  # the calibration's features -> a bias on every image feature channel
            self.calibration_embed = nn.Sequential(nn.Linear(CALIBRATION_FEATURES, 2 * c_img), nn.SiLU(),
                                                   nn.Linear(2 * c_img, c_img))
        if config.var_prior:
            self._build_var(config)
        # works on the camera grid; pixel-shuffle gives upscale x upscale output cells per pixel
        head_out, width = head_channels(config.with_z), config.head_width
        self.loc_head = nn.Sequential(
            nn.Conv2d(c_img + config.tokenizer_channels + c_in, width, 1), nn.GELU(), ResBlock(width),
            nn.Conv2d(width, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, head_out * config.upscale**2, 1), nn.PixelShuffle(config.upscale),
        )
        with torch.no_grad():  # start from a low detection prior: emitters are sparse
            self.loc_head[-2].bias.view(head_out, -1)[0] = DETECTION_PRIOR_LOGIT

    def _build_var(self, config: ModelConfig) -> None:
        """The emitter tokenizer and the scale-wise transformer (absent from the no-VAR baseline)."""
        dim, c_img, n_scales = config.embed_dim, config.image_channels, len(config.patch_nums)
        self.tokenizer = EmitterTokenizer(config)
        self.image_to_token = nn.Linear(c_img, dim)
        self.global_embed = nn.Sequential(nn.Linear(c_img, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.word_embed = nn.Linear(config.cvq, dim)
        self.level_embed = nn.Embedding(n_scales, dim)
        self.scale_cond = nn.Embedding(n_scales, dim)
        if config.window_px == 0:  # v1: learned on the training grids, interpolated to others
            self.pos_embeds = nn.ParameterList(
                nn.Parameter(sincos_2d(dim, h, w).T.reshape(1, dim, h, w))
                for h, w in config.grids(TRAIN_TILE_PX, TRAIN_TILE_PX)
            )
        self.blocks = nn.ModuleList(
            AdaLNBlock(dim, config.num_heads, config.mlp_ratio) for _ in range(config.num_layers)
        )
        self.head = AdaLNHead(dim, config.vocab_size)
        self.rate_heads = nn.ModuleList(nn.Conv2d(config.cvq, 1, 3, padding=1) for _ in range(n_scales))

    # ---------------------------------------------------------------- shared
    def encode_image(self, photons_BFHW: torch.Tensor, calibration_BP: torch.Tensor | None = None):
        """photons_BFHW: a frame and its context (model.config.input_frames). Returns (normalised
        input (B, F + 1, H, W), features (B, C_img, H, W)); a calibration-
        conditioned model adds its calibration's embedding (calibration_BP: (B, CALIBRATION_FEATURES))."""
        x = normalise(photons_BFHW)
        feats = self.image_encoder(x)
        if self.config.psf_condition:
            if calibration_BP is None:
                raise ValueError("this 3-D model takes the PSF calibration as an input: none was given")
            feats = feats + self.calibration_embed(calibration_BP.to(feats))[:, :, None, None]
        return x, feats

    def token_conditions(self, feats_BCHW: torch.Tensor, grids: Grids):
        """Image tokens per scale [(B, l, D)] (features + level + position) and the AdaLN
        condition of each scale (B, S, D): global frame embedding + scale embedding."""
        global_BD = self.global_embed(feats_BCHW.mean(dim=(2, 3)))
        tokens = []
        for si, grid in enumerate(grids):
            pooled = F.adaptive_avg_pool2d(feats_BCHW, grid).flatten(2).transpose(1, 2)
            level = self.level_embed.weight[si] + self.position_embedding(si, grid).to(pooled)
            tokens.append(self.image_to_token(pooled) + level)
        return tokens, global_BD[:, None] + self.scale_cond.weight[None, : len(grids)]

    def position_embedding(self, si: int, grid: tuple[int, int]) -> torch.Tensor:
        """(1, h * w, D) position of each token of scale si. With local windows: 2D sine-cosine of
        the position inside the token's window on local scales and inside the tile on global ones,
        computed for the grid in use (the same at training and inference). v1 (window_px = 0):
        learned on the training grid and bilinearly interpolated to other grids."""
        dim = self.config.embed_dim
        if self.config.window_px == 0:
            pos = self.pos_embeds[si]
            if pos.shape[-2:] != grid:
                pos = F.interpolate(pos, size=grid, mode="bilinear", align_corners=False)
            return pos.flatten(2).transpose(1, 2)
        (h, w), stride = grid, self.config.token_strides_px[si]
        if not local_scales(self.config.token_strides_px, self.config.window_px)[si]:
            return sincos_2d(dim, h, w)[None]
        t = self.config.window_px // stride
        in_window = sincos_2d(dim, t, t).view(1, t, 1, t, dim)  # (window row, row, window col, col)
        return in_window.expand(h // t, t, w // t, t, dim).reshape(1, h * w, dim)

    def scale_probability(self, si: int, f_hat: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """(B, 1, h, w) probability that a cell of scale si's grid holds an emitter, from f_hat
        so far: each latent cell predicts an expected count; P = 1 - exp(-sum of counts)."""
        rate = F.softplus(self.rate_heads[si](f_hat))
        cells = (rate.shape[-2] // grid[0]) * (rate.shape[-1] // grid[1])
        return 1 - torch.exp(-F.adaptive_avg_pool2d(rate, grid) * cells)

    def localise(self, x_BCHW, feats_BCHW, f_hat, prior_scale: float = 1.0) -> torch.Tensor:
        """Localisation head output (B, K, H * upscale, W * upscale) from the image features and
        the decoded VAR prior. prior_scale = 0 zeroes the prior (the ablation); the no-VAR baseline
        (f_hat None) has zeros in its place."""
        if f_hat is None:
            prior = feats_BCHW.new_zeros(feats_BCHW.shape[0], self.config.tokenizer_channels, *feats_BCHW.shape[2:])
        else:
            prior = self.tokenizer.decode_features(f_hat) * prior_scale
        return self.loc_head(torch.cat([feats_BCHW, x_BCHW, prior], dim=1))

    def latent_hw(self, grids: Grids) -> tuple[int, int]:
        return grids[-1]

    # ---------------------------------------------------------------- only used in training
    def forward(self, photons_BFHW: torch.Tensor, idx_list: list[torch.Tensor], grids: Grids,
                calibration_BP: torch.Tensor | None = None):
        """Teacher forcing. Returns (code logits (B, L, V), per-scale probabilities [(B,1,h,w)],
        localisation head output (B, K, H_o, W_o)); the no-VAR baseline: (None, [], head output)."""
        x, feats = self.encode_image(photons_BFHW, calibration_BP)
        if not self.config.var_prior:
            return None, [], self.localise(x, feats, None)
        tokens, cond_BSD = self.token_conditions(feats, grids)
        quantizer = self.tokenizer.quantizer
        with torch.no_grad():
            teacher = quantizer.teacher_inputs(idx_list, grids, self.latent_hw(grids))
        words = torch.cat([torch.zeros_like(tokens[0]), self.word_embed(teacher)], dim=1)
        h = torch.cat(tokens, dim=1) + words
        level = token_levels([a * b for a, b in grids], device=h.device)
        mask = attention_mask(grids, self.config.token_strides_px, self.config.window_px, level)
        for block in self.blocks:
            h = block(h, cond_BSD, level, mask)
        logits = self.head(h, cond_BSD, level)
        with torch.no_grad():  # the map as inference would build it: predicted codes per scale
            predicted = self._split(logits.argmax(-1), grids)
            f_hats = quantizer.f_hats(predicted, self.latent_hw(grids))
        probs = [self.scale_probability(si, f, g) for si, (f, g) in enumerate(zip(f_hats, grids))]
        return logits, probs, self.localise(x, feats, f_hats[-1])

    @staticmethod
    def _split(idx_BL: torch.Tensor, grids: Grids) -> list[torch.Tensor]:
        parts = idx_BL.split([a * b for a, b in grids], dim=1)
        return [p.reshape(-1, *g) for p, g in zip(parts, grids)]

    # ---------------------------------------------------------------- only used in inference
    @torch.no_grad()
    def generate(self, photons_BFHW: torch.Tensor, temperature: float = 0.0, generator=None,
                 prior_scale: float = 1.0, calibration_BP: torch.Tensor | None = None):
        """Predict scale by scale with a KV cache. temperature 0 = argmax (deterministic).
        Returns (per-scale probability maps [(B, 1, h, w)] (none for the no-VAR baseline), head
        output (B, K, H_o, W_o))."""
        grids = self.config.grids(*photons_BFHW.shape[-2:])
        x, feats = self.encode_image(photons_BFHW, calibration_BP)
        if not self.config.var_prior:
            return [], self.localise(x, feats, None)
        tokens, cond_BSD = self.token_conditions(feats, grids)
        quantizer = self.tokenizer.quantizer
        f_hat = feats.new_zeros(feats.shape[0], self.config.cvq, *self.latent_hw(grids))
        words, probs = None, []
        caches = [KVCache() for _ in self.blocks]  # this call's own: concurrent calls never share
        strides, window_px = self.config.token_strides_px, self.config.window_px
        for si, (grid, local) in enumerate(zip(grids, local_scales(strides, window_px))):
            h = tokens[si] if words is None else tokens[si] + self.word_embed(words)
            level = torch.full((h.shape[1],), si, dtype=torch.long, device=h.device)
            window = (grid, window_px // strides[si]) if local else None
            for block, cache in zip(self.blocks, caches):
                h = block(h, cond_BSD, level, None, cache, window)
            logits = self.head(h, cond_BSD, level)
            if temperature > 0:
                p = torch.softmax(logits / temperature, -1).flatten(0, 1)
                idx = torch.multinomial(p, 1, generator=generator).view(logits.shape[:2])
            else:
                idx = logits.argmax(-1)
            f_hat, words = quantizer.next_input(si, f_hat, idx.view(-1, *grid), grids)
            probs.append(self.scale_probability(si, f_hat, grid))
        return probs, self.localise(x, feats, f_hat, prior_scale)
