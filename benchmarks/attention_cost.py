"""What local attention windows save on the CPU: frames/s of the bundled model (global attention)
against models of the same size with windows at the fine scales (ModelConfig.window_px), with
random weights (the cost does not depend on them), on frames of Poisson noise.

Run: .venv/bin/python benchmarks/attention_cost.py [--threads 2] [--frames 8] [--windows 32 16]
Prints one line per frame size, model and tiling; asserts nothing.
"""

import argparse
import dataclasses
import time

import numpy as np
import torch

from napari_var_emitter.io.camera import Camera
from napari_var_emitter.model.predictor import VAREmitterPredictor
from napari_var_emitter.predict import PredictOptions, predict_frames
from napari_var_emitter.predict.model_cache import cached_model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--windows", type=int, nargs="+", default=[32, 16], help="window_px values")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bundled, _ = cached_model()
    torch.manual_seed(0)
    models = {"bundled (global)": bundled}
    for window in args.windows:
        models[f"windows of {window} px"] = VAREmitterPredictor(dataclasses.replace(bundled.config,
                                                                                   window_px=window)).eval()
    rng, camera = np.random.default_rng(0), Camera(e_per_adu=1.0)
    for size in (160, 256):
        frames = (rng.poisson(50, (args.frames, size, size)) + 100).astype(np.uint16)
        for name, model in models.items():
            tilings = [(128, 32)] if model is bundled else [(128, 32), (512, 32)]  # 512: the whole frame
            for tile_px, margin_px in tilings:
                options = PredictOptions(tile_px=tile_px, margin_px=margin_px)
                predict_frames(model, frames[:2], camera, options)  # warm-up
                started = time.perf_counter()
                predict_frames(model, frames, camera, options)
                rate = len(frames) / (time.perf_counter() - started)
                print(f"{size}x{size} {name:<18} tiles {tile_px} + {margin_px} px: {rate:.2f} frames/s", flush=True)


if __name__ == "__main__":
    main()
