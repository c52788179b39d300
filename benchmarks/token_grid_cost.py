"""What the seeds' finer token grids (strides down to 2 px) cost on a CPU, now that inference is
linear in area: frames/s of predict_frames for the v2 candidate's configuration with its grid
(strides 32-16-8-4 px) against a fifth scale at 2 px and the seeds' (10, 20, 40, 80) with
16-px windows, random weights (the cost does not depend on them), the default tiles and passes.

Run: .venv/bin/python benchmarks/token_grid_cost.py [--threads 2] [--frames 16] [--sizes 160 256]
Prints one line per grid and frame size; asserts nothing. Whether a finer grid pays in accuracy
at high density needs a trained model (a GPU run; issue 11).
"""

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from napari_var_emitter.io.camera import Camera
from napari_var_emitter.model.checkpoint import load_model
from napari_var_emitter.model.predictor import VAREmitterPredictor
from napari_var_emitter.predict import PredictOptions, predict_frames
from napari_var_emitter.simulate.config import SimulationConfig
from napari_var_emitter.simulate.stack import simulate_stack

CANDIDATE = Path(__file__).parent / "candidates" / "v2" / "model.safetensors"
GRIDS = {  # name: (patch_nums per 160 px, window_px)
    "v2: strides 32, 16, 8, 4 px": ((5, 10, 20, 40), 32),
    "v2 + a 2-px scale: 32, 16, 8, 4, 2 px": ((5, 10, 20, 40, 80), 32),
    "seeds: 16, 8, 4, 2 px, 16-px windows": ((10, 20, 40, 80), 16),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--sizes", type=int, nargs="+", default=[160, 256])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = load_model(CANDIDATE)[0].config
    print(f"v2 candidate's widths (embed {base.embed_dim}, {base.num_layers} layers), {args.threads} CPU threads")
    for size in args.sizes:
        config = SimulationConfig(frame_size=size, n_frames=args.frames, density_per_um2=1.0,
                                  camera=Camera(e_per_adu=0.5))
        frames, truth = simulate_stack(config, np.random.default_rng(0))
        for name, (patch_nums, window_px) in GRIDS.items():
            torch.manual_seed(0)
            model_config = dataclasses.replace(base, patch_nums=patch_nums, window_px=window_px)
            model = VAREmitterPredictor(model_config).eval()
            tokens = sum(h * w for h, w in model_config.grids(size, size))
            predict_frames(model, frames[:2], truth.camera, PredictOptions())  # warm-up
            started = time.perf_counter()
            predict_frames(model, frames, truth.camera, PredictOptions())
            rate = len(frames) / (time.perf_counter() - started)
            print(f"{size}x{size} {name:<40} {tokens:>6} tokens per frame: {rate:.2f} frames/s", flush=True)


if __name__ == "__main__":
    main()
