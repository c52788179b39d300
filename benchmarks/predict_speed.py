"""Prediction throughput of the bundled model (frames/s), whole pipeline from ADU frames.

Run: .venv/bin/python benchmarks/predict_speed.py [--device cpu|cuda] [--threads N]
Prints frames/s for 160x160 and 256x256 frames; asserts nothing.
"""

import argparse
import os
import time

import numpy as np
import torch

from napari_var_emitter.io.camera import Camera
from napari_var_emitter.model.checkpoint import load_model
from napari_var_emitter.model.inference import predict_frames
from napari_var_emitter.simulate.config import SimulationConfig
from napari_var_emitter.simulate.stack import simulate_stack


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--frames", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, _ = load_model(None, args.device)
    print(f"device {args.device}, {args.threads} threads, torch {torch.__version__}")
    for size in (160, 256):
        config = SimulationConfig(frame_size=size, n_frames=args.frames, density_per_um2=1.0,
                                  camera=Camera(e_per_adu=0.5))
        frames, truth = simulate_stack(config, np.random.default_rng(0))
        predict_frames(model, frames[:4], truth.camera, device=args.device)  # warm-up
        started = time.perf_counter()
        result = predict_frames(model, frames, truth.camera, device=args.device)
        elapsed = time.perf_counter() - started
        print(f"{size}x{size}: {args.frames / elapsed:.2f} frames/s "
              f"({elapsed / args.frames * 1000:.0f} ms/frame, {len(result.table)} localisations)")


if __name__ == "__main__":
    main()
