"""What a model configuration costs on a CPU, now that inference is linear in area: frames/s of
predict_frames for the v2 candidate's configuration and variants of it, with random weights
(the cost does not depend on them), the default tiles and passes, on simulated frames at 1 /um^2.

Token grids: the candidate's (strides 32-16-8-4 px), a fifth scale at 2 px, and the seeds'
(10, 20, 40, 80) with 16-px windows. Widths: the candidate's (embed 96, 3 layers; camera-grid
convolutions image 16, tokenizer 32, head 24), wider camera-grid convolutions, a wider and
deeper transformer, and v1's widths with windows.

Run: .venv/bin/python benchmarks/model_cost.py [--threads 2] [--frames 16] [--sizes 160 256]
Prints one line per configuration and frame size; asserts nothing. Whether a costlier
configuration pays in accuracy needs trained models (a GPU run; issue 11).
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
VARIANTS = {  # name: changes to the candidate's ModelConfig
    "v2 candidate": {},
    "+ a 2-px scale (strides 32..2 px)": {"patch_nums": (5, 10, 20, 40, 80)},
    "seeds' grid (16..2 px), 16-px windows": {"patch_nums": (10, 20, 40, 80), "window_px": 16},
    "camera-grid convs 24 / 48 / 32": {"image_channels": 24, "tokenizer_channels": 48, "head_width": 32},
    "transformer 128 wide, 4 layers": {"embed_dim": 128, "num_layers": 4},
    "v1's widths, with windows": {"embed_dim": 128, "num_layers": 4, "image_channels": 32,
                                  "tokenizer_channels": 48, "head_width": 48},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--sizes", type=int, nargs="+", default=[160, 256])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = load_model(CANDIDATE)[0].config
    print(f"v2 candidate's configuration and variants, random weights, {args.threads} CPU threads")
    for size in args.sizes:
        config = SimulationConfig(frame_size=size, n_frames=args.frames, density_per_um2=1.0,
                                  camera=Camera(e_per_adu=0.5))
        frames, truth = simulate_stack(config, np.random.default_rng(0))
        for name, changes in VARIANTS.items():
            torch.manual_seed(0)
            model_config = dataclasses.replace(base, **changes)
            model = VAREmitterPredictor(model_config).eval()
            tokens = sum(h * w for h, w in model_config.grids(size, size))
            parameters = sum(p.numel() for p in model.parameters())
            predict_frames(model, frames[:2], truth.camera, PredictOptions())  # warm-up
            started = time.perf_counter()
            predict_frames(model, frames, truth.camera, PredictOptions())
            rate = len(frames) / (time.perf_counter() - started)
            print(f"{size}x{size} {name:<40} {tokens:>6} tokens, {parameters / 1e6:.2f} M parameters: "
                  f"{rate:.2f} frames/s", flush=True)


if __name__ == "__main__":
    main()
