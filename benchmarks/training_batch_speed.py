"""How fast training batches are simulated: one process, one thread, as each `--workers` process
of `var-emitter train` makes them. A GPU step is fed when workers / (seconds per batch) batches
arrive per second, so this says how many workers a GPU run needs (or how fast it can go).

With --workers N, the batches come through `--workers`' PrefetchedSource instead, and the
script prints how long the training process waits for each one when a step takes --step-ms
(a sleep standing in for a GPU step, which waits with Python's lock released).

Run: .venv/bin/python benchmarks/training_batch_speed.py [--batches N] [--workers N --step-ms MS]
     [CONFIG ...] (default: configs/gpu_v2.json configs/gpu_3d.json). Prints one line per config;
     asserts nothing.
"""

import argparse
import time

import numpy as np
import torch

from napari_var_emitter.train.config import TrainConfig
from napari_var_emitter.train.data import SimulatedSource
from napari_var_emitter.train.prefetch import PrefetchedSource


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("configs", nargs="*", default=["configs/gpu_v2.json", "configs/gpu_3d.json"])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--workers", type=int, default=0, help="through PrefetchedSource with N worker processes")
    parser.add_argument("--step-ms", type=float, default=300.0, help="the stand-in training step, with --workers")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for path in args.configs:
        config = TrainConfig.from_file(path)
        t = config.training
        source = SimulatedSource(config.simulation, config.model, t.tile_px, t.seed)
        if args.workers:
            waits = _waits_through_workers(source, args.workers, t.batch_size, args.batches, args.step_ms / 1000)
            print(f"{path}: with {args.workers} workers and {args.step_ms:.0f} ms steps, the training process "
                  f"waited {np.median(waits) * 1000:.1f} ms per batch (median; max {waits.max() * 1000:.1f})",
                  flush=True)
            continue
        source.batch(t.batch_size)  # warm-up
        started = time.perf_counter()
        for _ in range(args.batches):
            source.batch(t.batch_size)
        seconds = (time.perf_counter() - started) / args.batches
        print(f"{path}: {seconds * 1000:.0f} ms per batch of {t.batch_size} tiles of {t.tile_px} px "
              f"({1 / seconds:.1f} batches/s per worker, {args.batches} batches)", flush=True)


def _waits_through_workers(source, workers: int, batch_size: int, batches: int, step_s: float) -> np.ndarray:
    """Seconds the training process waited for each batch, a step of step_s seconds after each."""
    prefetched = PrefetchedSource(source, workers)
    try:
        prefetched.batch(batch_size)  # the workers start
        waits = []
        for _ in range(batches):
            time.sleep(step_s)
            started = time.perf_counter()
            prefetched.batch(batch_size)
            waits.append(time.perf_counter() - started)
    finally:
        prefetched.close()
    return np.array(waits)


if __name__ == "__main__":
    main()
