"""Held-out evaluation during training: fixed simulated stacks from seeds training never uses."""

from __future__ import annotations

import numpy as np
import torch

from ..evaluate.metrics import evaluate
from ..io.camera import Camera
from ..model.tokenizer import tokenizer_maps
from ..predict.frames import predict_frames
from ..predict.options import PredictOptions
from ..predict.postprocess import maps_to_table
from ..psf import PSF
from ..simulate.config import SimulationConfig
from ..simulate.stack import simulate_stack
from .data import make_batch, tables_per_frame

HELD_OUT_SEED = 7_000_000  # training streams start from the config's seed (small integers)
# (name, density /µm², photons, background): the acceptance conditions of docs/benchmarks.md
CONDITIONS = (("low", 0.1, 5000.0, 20.0), ("medium", 0.5, 2000.0, 50.0), ("high", 2.0, 2000.0, 50.0))


def heldout_stacks(n_frames: int = 16, frame_px: int = 64, seed: int = HELD_OUT_SEED, psf: PSF | None = None):
    """[(name, frames, truth)] for the three conditions, σ = 130 nm (or through an astigmatic
    `psf`, z uniform in its range), 100 nm pixels, sCMOS; condition i is simulated from seed + i."""
    stacks = []
    for i, (name, density, photons, background) in enumerate(CONDITIONS):
        config = SimulationConfig(frame_size=frame_px, n_frames=n_frames, density_per_um2=density,
                                  photons_mean=photons, background_photons=background,
                                  psf=psf or PSF(sigma_nm=130.0), camera=Camera(e_per_adu=0.5, read_noise_e=1.5))
        frames, truth = simulate_stack(config, np.random.default_rng(seed + i))
        stacks.append((name, frames, truth))
    return stacks


def evaluate_heldout(model, stacks) -> dict[str, float]:
    """Jaccard and lateral RMSE per condition (on the model's device), and axial RMSE in 3-D."""
    model.eval()
    scores = {}
    for name, frames, truth in stacks:
        options = PredictOptions(psf=PSF.from_dict(truth.psf)) if model.config.with_z else PredictOptions()
        report = evaluate(predict_frames(model, frames, truth.camera, options).table, truth)
        scores[f"{name}_jaccard"] = report["jaccard"]
        scores[f"{name}_rmse_nm"] = report["rmse_lateral_nm"]
        if "rmse_axial_nm" in report:
            scores[f"{name}_rmse_z_nm"] = report["rmse_axial_nm"]
    model.train()
    return scores


@torch.no_grad()
def tokenizer_ceiling(model, stacks, threshold: float = 0.5, occupied: float | None = 0.5) -> dict[str, float]:
    """Jaccard of ground-truth tokens decoded and localised, per condition (the upper bound
    the transformer's tokens can reach). Also codebook perplexity and utilisation.

    The decoded map is trained to mark each emitter's own output-grid cell, so every cell it calls
    occupied (p >= `occupied`) is a detection, as well as the 3x3 local maxima; with
    occupied=None only the local maxima (which merge emitters in adjacent cells)."""
    tokenizer = model.tokenizer.eval()
    config = model.config
    scores, counts = {}, torch.zeros(config.vocab_size)
    for name, frames, truth in stacks:
        px = truth.camera.pixel_size_nm
        n, height, width = frames.shape
        batch = make_batch(np.zeros((n, height, width), np.float32), tables_per_frame(truth.emitters, n),
                           np.zeros((n, height, width)), np.full(n, px), config)
        grids = config.grids(height, width)
        idx_list = tokenizer.quantizer.tokens(tokenizer.encode(batch.token_map), grids)
        counts += torch.cat([i.flatten() for i in idx_list]).bincount(minlength=config.vocab_size).float()
        f_hat = tokenizer.quantizer.f_hats(idx_list, grids[-1])[-1]
        table = maps_to_table(tokenizer_maps(tokenizer.decode(f_hat)[1]), threshold, px / config.upscale,
                              np.arange(n), occupied=occupied)
        scores[f"{name}_ceiling_jaccard"] = evaluate(table, truth)["jaccard"]
    p = counts / counts.sum()
    scores["codebook_perplexity"] = float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum()))
    scores["codebook_utilisation"] = float((counts > 0).float().mean())
    return scores
