"""Prediction throughput (frames/s), whole pipeline from ADU frames, and the accuracy of the
same run against its simulated truth (so float32 and bfloat16 autocast can be compared).

Run: .venv/bin/python benchmarks/predict_speed.py [--device cpu|cuda] [--threads N]
     [--model PATH] [--batch-size N] [--amp] [--sizes 160 256] [--frames N]
Prints one line per frame size; asserts nothing.
"""

import argparse
import os
import time

import numpy as np
import torch

from napari_var_emitter.evaluate.metrics import evaluate
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
    parser.add_argument("--model", help="weights (default: bundled)")
    parser.add_argument("--batch-size", type=int, default=4, help="frames read and tiles run at a time")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast")
    parser.add_argument("--sizes", type=int, nargs="+", default=[160, 256])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, _ = load_model(args.model, args.device)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{args.threads} CPU threads"
    print(f"device {args.device} ({name}), torch {torch.__version__}, batch {args.batch_size}, "
          f"{'bfloat16 autocast' if args.amp else 'float32'}")
    options = {"device": args.device, "batch_size": args.batch_size, "amp": args.amp}
    for size in args.sizes:
        config = SimulationConfig(frame_size=size, n_frames=args.frames, density_per_um2=1.0,
                                  camera=Camera(e_per_adu=0.5))
        frames, truth = simulate_stack(config, np.random.default_rng(0))
        predict_frames(model, frames[:args.batch_size], truth.camera, **options)  # warm-up
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        result = predict_frames(model, frames, truth.camera, **options)
        elapsed = time.perf_counter() - started
        report = evaluate(result.table, truth)
        print(f"{size}x{size}: {args.frames / elapsed:.2f} frames/s ({elapsed / args.frames * 1000:.0f} ms/frame); "
              f"Jaccard {report['jaccard']:.2f} %, RMSE {report['rmse_lateral_nm']:.2f} nm, "
              f"{len(result.table)} localisations")


if __name__ == "__main__":
    main()
