"""How prediction should cut frames on a CPU: the measurements behind predict.tiling's default
tile cores, predict.frames.CPU_PIXELS_PER_PASS and model.transformer.attend_windows.

1. Windowed attention at the fine scale of each frame size: scaled_dot_product_attention on the
   5-D (batch, heads, windows, tokens, channels) tensors, which PyTorch runs with its unfused
   kernel, against attend_windows (windows joined to the heads, 4-D, so a fused kernel runs),
   1 to 4 frames at a time.
2. predict_frames in frames/s for tile cores of 128, 192, 256 and 448 px (32-px margins; a frame up
   to core + 64 px runs whole) and passes of 1, 2 or 4 tiles, on simulated frames at 1 /um^2.

Run: .venv/bin/python benchmarks/tiles_and_passes.py [--model PATH] [--threads 2] [--frames 16]
     [--sizes 160 256 512]
(default model: the v2 candidate, benchmarks/candidates/v2). Prints a line per measurement;
asserts nothing.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from napari_var_emitter.io.camera import Camera
from napari_var_emitter.model.transformer import attend_windows
from napari_var_emitter.model.windows import local_scales
from napari_var_emitter.predict import PredictOptions, frames as frames_module, predict_frames
from napari_var_emitter.predict.model_cache import cached_model
from napari_var_emitter.predict.tiling import TileLayout
from napari_var_emitter.simulate.config import SimulationConfig
from napari_var_emitter.simulate.stack import simulate_stack

CANDIDATE = Path(__file__).parent / "candidates" / "v2" / "model.safetensors"


def best_of(run, repeats: int = 5) -> float:
    """Shortest of `repeats` timed calls after a warm-up (s)."""
    run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def attention_rows(config, size: int) -> None:
    """The finest scale's windowed attention of a size x size frame: a 5-D call against attend_windows."""
    strides, heads = config.token_strides_px, config.num_heads
    local = local_scales(strides, config.window_px)
    if not local[-1]:
        print(f"{size}x{size}: the model has no local windows at its finest scale")
        return
    n_global = sum((size // s) ** 2 for s, is_local in zip(strides, local) if not is_local)
    t = config.window_px // strides[-1]
    n_windows = (size // config.window_px) ** 2
    n_keys = n_global + sum((config.window_px // s) ** 2 for s, is_local in zip(strides, local) if is_local)
    c = config.embed_dim // heads
    for frames in (1, 2, 4):
        q = torch.randn(frames, heads, n_windows, t * t, c)
        k, v = torch.randn(2, frames, heads, n_windows, n_keys, c)
        five_d = best_of(lambda: F.scaled_dot_product_attention(q, k, v)) / frames
        joined = best_of(lambda: attend_windows(q, k, v)) / frames
        print(f"{size}x{size} attention, {n_windows} windows of {t * t} tokens x {n_keys} keys, {frames} frame(s) "
              f"at a time: 5-D call {five_d * 1e3:.1f} ms/frame, windows joined to the heads {joined * 1e3:.1f} "
              "ms/frame", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(CANDIDATE))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=16, help="at 256 x 256 px; other sizes as many pixels")
    parser.add_argument("--sizes", type=int, nargs="+", default=[160, 256, 512])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, _ = cached_model(args.model, "cpu")
    print(f"{Path(args.model).name}, {args.threads} CPU threads, torch {torch.__version__}")
    with torch.no_grad():
        for size in args.sizes:
            attention_rows(model.config, size)
    frames_module.CPU_PIXELS_PER_PASS = 1 << 40  # passes set by batch_size alone below
    for size in args.sizes:
        n_frames = max(4, round(args.frames * (256 / size) ** 2))
        config = SimulationConfig(frame_size=size, n_frames=n_frames, density_per_um2=1.0,
                                  camera=Camera(e_per_adu=0.5))
        frames, truth = simulate_stack(config, np.random.default_rng(0))
        for tile_px in (128, 192, 256, 448):
            for per_pass in (1, 2, 4):
                options = PredictOptions(tile_px=tile_px, batch_size=per_pass)
                predict_frames(model, frames[:per_pass], truth.camera, options)  # warm-up
                started = time.perf_counter()
                predict_frames(model, frames, truth.camera, options)
                elapsed = time.perf_counter() - started
                tiles = len(TileLayout.plan(size, size, model.config.token_strides_px[0], tile_px,
                                            options.margin_px).origins)
                print(f"{size}x{size} core {tile_px} px ({tiles} tile(s) per frame), {per_pass} tile(s) per pass: "
                      f"{len(frames) / elapsed:.2f} frames/s", flush=True)


if __name__ == "__main__":
    main()
