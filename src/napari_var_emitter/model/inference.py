"""Whole frames -> localisations and per-scale maps, tile by tile.

A frame up to tile_px + 2 * margin_px (192 px by default) is processed whole; larger frames
are cut into tiles of `tile_px` camera pixels plus a `margin_px` border of context (both
multiples of the coarsest token stride; frames are reflect-padded to fit). A
detection is kept only by the tile whose core holds it, so tiles stitch without seams or
duplicates; maps are stitched from the tiles' cores.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from ..io.camera import Camera, frames_to_photons
from .config import DEFAULT_THRESHOLD
from .postprocess import LOGIT, head_maps, maps_to_table
from .predictor import VAREmitterPredictor


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


@torch.no_grad()
def predict_frames(model: VAREmitterPredictor, frames_adu, camera: Camera, threshold: float = DEFAULT_THRESHOLD,
                   tile_px: int = 128, margin_px: int = 32, batch_size: int = 4, device: str = "cpu",
                   first_frame: int = 0, prior_scale: float = 1.0, output_map: bool = False, amp: bool = False,
                   samples: int = 1, progress: Callable[[int, int], None] | None = None) -> Prediction:
    """Localise (T, H, W) ADU frames (numpy or dask) with `model`. prior_scale = 0 runs the
    ablation without the VAR prior; output_map keeps the output-grid probability map.

    `batch_size` frames are read at a time and their tiles go through the model
    `batch_size` tiles at a time; amp runs the model in bfloat16 autocast (a GPU option:
    docs/benchmarks.md compares its accuracy with float32). samples = 1 takes the argmax
    tokens; samples = N > 1 averages the maps and the detection probability over N
    generations with tokens sampled at temperature 1 (seeded by each batch's first frame index, so
    the same call repeats exactly)."""
    if samples < 1:
        raise ValueError("samples must be 1 or more")
    config = model.config
    step = config.token_strides_px[0]
    if tile_px % step or margin_px % step:
        raise ValueError(f"tile_px and margin_px must be multiples of {step}")
    n, height, width = frames_adu.shape
    cell_nm = camera.pixel_size_nm / config.upscale
    strides = config.token_strides_px
    # a frame that fits in one tile with its context margins is processed whole
    rounded_h, rounded_w = -(-height // step) * step, -(-width // step) * step
    core_h = rounded_h if rounded_h <= tile_px + 2 * margin_px else tile_px
    core_w = rounded_w if rounded_w <= tile_px + 2 * margin_px else tile_px
    margin = margin_px if (core_h < height or core_w < width) else 0
    origins = [(r, c) for r in range(0, height, core_h) for c in range(0, width, core_w)]
    pad_h = origins[-1][0] + core_h - height
    pad_w = origins[-1][1] + core_w - width
    maps = [np.zeros((n, -(-height // s), -(-width // s)), np.float32) for s in strides]
    up = config.upscale
    fine = np.zeros((n, height * up, width * up), np.float32) if output_map else None
    tables = []
    for start in range(0, n, batch_size):
        chunk = frames_to_photons(np.asarray(frames_adu[start:start + batch_size]), camera, first_frame + start)
        image = _to_device(torch.from_numpy(chunk)[:, None], device)
        pads = (margin, margin + pad_w, margin, margin + pad_h)
        if any(pads):  # reflect where the frame is large enough, else repeat the edge
            image = F.pad(image, pads, mode="reflect" if max(pads) < min(height, width) else "replicate")
        tiles = torch.cat([image[..., r:r + core_h + 2 * margin, c:c + core_w + 2 * margin] for r, c in origins])
        all_probs, all_head = _generate(model, tiles, batch_size, prior_scale, amp, samples, first_frame + start)
        for ti, (r, c) in enumerate(origins):  # tile ti holds rows ti * b .. (ti + 1) * b
            rows = slice(ti * len(chunk), (ti + 1) * len(chunk))
            probs, head = [p[rows] for p in all_probs], all_head[rows]
            px = camera.pixel_size_nm
            named = head_maps(head)
            if fine is not None:
                cut = margin * up
                _paste(fine[start:start + len(chunk), r * up:(r + core_h) * up, c * up:(c + core_w) * up],
                       named["prob"][:, cut:, cut:].cpu().numpy())
            table = maps_to_table(named, threshold, cell_nm, np.arange(start, start + len(chunk)),
                                  origin_nm=((c - margin) * px, (r - margin) * px))
            x, y = table["x_nm"], table["y_nm"]  # keep what lies in this tile's core and the frame
            core = ((x >= c * px) & (x < min(c + core_w, width) * px)
                    & (y >= r * px) & (y < min(r + core_h, height) * px))
            tables.append(table[core])
            for si, (p, s) in enumerate(zip(probs, strides)):
                m, (r0, c0) = margin // s, (r // s, c // s)
                block = p[:, 0, m:p.shape[2] - m, m:p.shape[3] - m].cpu().numpy()
                _paste(maps[si][start:start + len(chunk), r0:r0 + block.shape[1], c0:c0 + block.shape[2]], block)
        if progress is not None:
            progress(min(start + batch_size, n), n)
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    if len(table):
        table["frame"] += first_frame
        table = table.sort_values(["frame", "y_nm", "x_nm"], ignore_index=True)
    return Prediction(table, maps, strides, fine)


def _to_device(tensor: torch.Tensor, device: str) -> torch.Tensor:
    """Host -> device copy, through pinned memory to a GPU."""
    if torch.device(device).type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def _generate(model: VAREmitterPredictor, tiles: torch.Tensor, batch_size: int, prior_scale: float, amp: bool,
              samples: int, seed: int):
    """model.generate over (N, 1, h, w) tiles, batch_size at a time; float32 results
    ([(N, 1, h_s, w_s)] per scale, (N, K, H_o, W_o)); with samples > 1, means over sampled
    generations (the head's detection logit is the logit of the mean probability)."""
    generator = torch.Generator(tiles.device).manual_seed(seed) if samples > 1 else None
    outputs = []
    for part in tiles.split(batch_size):
        runs = []
        for _ in range(samples):
            with torch.autocast(tiles.device.type, dtype=torch.bfloat16, enabled=amp):
                probs, head = model.generate(part, temperature=1.0 if samples > 1 else 0.0, generator=generator,
                                             prior_scale=prior_scale)
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


def _paste(target: np.ndarray, block: np.ndarray) -> None:
    """Copy a tile's core block into its place in a stitched map (cut where the frame ends)."""
    target[...] = block[:, :target.shape[1], :target.shape[2]]


def predict(frames_adu, camera: Camera, model: VAREmitterPredictor | str | None = None, device: str = "cpu",
            **options) -> Prediction:
    """Localise (T, H, W) ADU frames: `model` is a loaded model, a weights path, or None for
    the bundled model; options go to `predict_frames` (threshold, tile_px, output_map, ...)."""
    from .checkpoint import load_model

    if not isinstance(model, VAREmitterPredictor):
        model = load_model(model, device)[0]
    return predict_frames(model, frames_adu, camera, device=device, **options)
