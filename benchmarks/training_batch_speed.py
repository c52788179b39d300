"""How fast training batches are simulated: one process, one thread, as each `--workers` process
of `var-emitter train` makes them. A GPU step is fed when workers / (seconds per batch) batches
arrive per second, so this says how many workers a GPU run needs (or how fast it can go).

Run: .venv/bin/python benchmarks/training_batch_speed.py [--batches N] [CONFIG ...]
     (default: configs/gpu_v2.json configs/gpu_3d.json). Prints one line per config; asserts nothing.
"""

import argparse
import time

import torch

from napari_var_emitter.train.config import TrainConfig
from napari_var_emitter.train.data import SimulatedSource


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("configs", nargs="*", default=["configs/gpu_v2.json", "configs/gpu_3d.json"])
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for path in args.configs:
        config = TrainConfig.from_file(path)
        t = config.training
        source = SimulatedSource(config.simulation, config.model, t.tile_px, t.seed)
        source.batch(t.batch_size)  # warm-up
        started = time.perf_counter()
        for _ in range(args.batches):
            source.batch(t.batch_size)
        seconds = (time.perf_counter() - started) / args.batches
        print(f"{path}: {seconds * 1000:.0f} ms per batch of {t.batch_size} tiles of {t.tile_px} px "
              f"({1 / seconds:.1f} batches/s per worker, {args.batches} batches)", flush=True)


if __name__ == "__main__":
    main()
