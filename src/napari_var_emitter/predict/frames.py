"""Whole frames -> localisations and per-scale maps: tiles through the model in batches, then
post-processing and stitching (predict/tiling.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from ..errors import InputError
from ..io.camera import Camera, frames_to_photons
from ..model.condition import calibration_vector
from ..model.head import LOGIT, head_maps
from ..model.predictor import VAREmitterPredictor
from .model_cache import cached_model
from .options import PredictOptions
from .postprocess import maps_to_table
from .tiling import TileLayout, default_tile_px, paste

# pixels of tiles one pass of the model takes on a CPU (one 256 x 256 frame, two 160 x 160 ones):
# larger passes outgrow the cache and run slower per pixel (docs/benchmarks.md, "Tiles and
# passes on a CPU")
CPU_PIXELS_PER_PASS = 1 << 16


@dataclasses.dataclass
class Prediction:
    """table: localisations (frame, x_nm, y_nm, photons, background, uncertainty_nm,
    probability); scale_maps: per scale, (T, h, w) probabilities with token stride
    `strides_px[s]` camera pixels (cell (0, 0) covers [0, stride) px); output_map: the
    detection probability on the output grid (T, H * upscale, W * upscale), if asked for."""

    table: pd.DataFrame
    scale_maps: list[np.ndarray]
    strides_px: tuple[int, ...]
    output_map: np.ndarray | None = None


def predict(frames_adu, camera: Camera, options: PredictOptions = PredictOptions(),
            model: VAREmitterPredictor | None = None,
            progress: Callable[[int, int], None] | None = None) -> Prediction:
    """Localise (T, H, W) ADU frames (numpy or dask) with `model`, or with options.weights (a
    bundled model when options.model is None) from the process's model cache."""
    if model is None:
        model = cached_model(options.weights, options.device)[0]
    return predict_frames(model, frames_adu, camera, options, progress=progress)


@torch.no_grad()
def predict_frames(model: VAREmitterPredictor, frames_adu, camera: Camera,
                   options: PredictOptions = PredictOptions(), first_frame: int = 0,
                   progress: Callable[[int, int], None] | None = None) -> Prediction:
    """Localise (T, H, W) ADU frames (numpy or dask); `first_frame` is the index of frames_adu[0]
    in its stack (the table's frame column counts from it). Runs where the model's weights are.

    `options.batch_size` frames are read at a time and their tiles go through the model
    batch_size tiles at a time (on a CPU, at most CPU_PIXELS_PER_PASS pixels of them); amp runs
    the model in bfloat16 autocast (a GPU option: docs/benchmarks.md compares its accuracy with
    float32). samples = N > 1 averages the maps and the detection probability over N
    generations with tokens sampled at temperature 1 (seeded by each batch's first frame index,
    so the same call repeats exactly)."""
    config = model.config
    calibration = None
    if config.psf_condition:
        if options.psf is None:
            raise InputError("this 3-D model takes your microscope's PSF calibration as an input: give it "
                             "(--psf PSF.json, from calibrate-psf)")
        calibration = torch.from_numpy(calibration_vector(options.psf))[None]
    strides, up = config.token_strides_px, config.upscale
    n, height, width = frames_adu.shape
    layout = TileLayout.plan(height, width, strides[0], options.tile_px or default_tile_px(config), options.margin_px)
    strides = strides if config.var_prior else ()  # the no-VAR baseline has no per-scale maps
    device = next(model.parameters()).device
    px, margin = camera.pixel_size_nm, layout.margin
    maps = [np.zeros((n, -(-height // s), -(-width // s)), np.float32) for s in strides]
    fine = np.zeros((n, height * up, width * up), np.float32) if options.output_map else None
    tables = []
    for start in range(0, n, options.batch_size):
        chunk = frames_to_photons(np.asarray(frames_adu[start:start + options.batch_size]), camera, first_frame + start)
        b = len(chunk)
        tiles = layout.cut(_to_device(torch.from_numpy(chunk)[:, None], device))
        all_probs, all_head = _generate(model, tiles, options, first_frame + start, calibration)
        for ti, (r, c) in enumerate(layout.origins):  # tile ti holds rows ti * b .. (ti + 1) * b
            rows = slice(ti * b, (ti + 1) * b)
            named = head_maps(all_head[rows])
            if fine is not None:
                cut = margin * up
                paste(fine[start:start + b, r * up:(r + layout.core_h) * up, c * up:(c + layout.core_w) * up],
                      named["prob"][:, cut:, cut:].cpu().numpy())
            table = maps_to_table(named, options.threshold, px / up, np.arange(start, start + b),
                                  origin_nm=((c - margin) * px, (r - margin) * px))
            tables.append(table[layout.in_core(table["x_nm"] / px, table["y_nm"] / px, (r, c))])
            for si, s in enumerate(strides):
                m, p = margin // s, all_probs[si][rows]
                block = p[:, 0, m:p.shape[2] - m, m:p.shape[3] - m].cpu().numpy()
                paste(maps[si][start:start + b, r // s:r // s + block.shape[1], c // s:c // s + block.shape[2]],
                      block)
        if progress is not None:
            progress(min(start + options.batch_size, n), n)
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    if len(table):
        table["frame"] += first_frame
        table = table.sort_values(["frame", "y_nm", "x_nm"], ignore_index=True)
    return Prediction(table, maps, strides, fine)


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host -> device copy, through pinned memory to a GPU."""
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def _generate(model: VAREmitterPredictor, tiles: torch.Tensor, options: PredictOptions, seed: int,
              calibration_1P: torch.Tensor | None = None):
    """model.generate over (N, 1, h, w) tiles, batch_size at a time and on a CPU at most
    CPU_PIXELS_PER_PASS pixels of them (with the calibration vector of a conditioned model);
    float32 results ([(N, 1, h_s, w_s)] per scale, (N, K, H_o, W_o)); with samples > 1, means
    over sampled generations (the head's detection logit is the logit of the mean probability)."""
    samples = options.samples
    generator = torch.Generator(tiles.device).manual_seed(seed) if samples > 1 else None
    per_pass = options.batch_size
    if tiles.device.type == "cpu":
        per_pass = max(1, min(per_pass, CPU_PIXELS_PER_PASS // (tiles.shape[-2] * tiles.shape[-1])))
    outputs = []
    for part in tiles.split(per_pass):
        runs = []
        for _ in range(samples):
            with torch.autocast(tiles.device.type, dtype=torch.bfloat16, enabled=options.amp):
                probs, head = model.generate(
                    part, temperature=1.0 if samples > 1 else 0.0, generator=generator,
                    prior_scale=options.prior_scale,
                    calibration_BP=None if calibration_1P is None else calibration_1P.expand(len(part), -1))
            runs.append(([p.float() for p in probs], head.float()))
        outputs.append(runs[0] if samples == 1 else _mean_of_samples(runs))
    probs = [torch.cat([o[0][si] for o in outputs]) for si in range(len(outputs[0][0]))]
    return probs, torch.cat([o[1] for o in outputs])


def _mean_of_samples(runs):
    """[(per-scale maps, head output)] of sampled generations -> their mean."""
    probs = [torch.stack([r[0][si] for r in runs]).mean(0) for si in range(len(runs[0][0]))]
    head = torch.stack([r[1] for r in runs]).mean(0)
    detection = torch.stack([torch.sigmoid(r[1][:, LOGIT]) for r in runs]).mean(0)
    head[:, LOGIT] = torch.logit(detection, eps=1e-6)
    return probs, head
