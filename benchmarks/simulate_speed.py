"""Simulator speed: 1,000 frames of 160x160 at 1 emitter/µm², then the OME-TIFF write.

Run: .venv/bin/python benchmarks/simulate_speed.py   (prints the figures; asserts nothing)
"""

import os
import tempfile
import time

import numpy as np

from napari_var_emitter.io.tiff import write_ome_tiff
from napari_var_emitter.simulate.config import SimulationConfig
from napari_var_emitter.simulate.stack import simulate_stack


def main() -> None:
    config = SimulationConfig(frame_size=160, n_frames=1000, density_per_um2=1.0)
    timings = []
    for seed in range(3):
        start = time.perf_counter()
        frames, truth = simulate_stack(config, np.random.default_rng(seed))
        timings.append(time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_ome_tiff(os.path.join(tmp, "s.ome.tiff"), frames, config.camera)
        write_s = time.perf_counter() - start
    per_frame = truth.emitters.groupby("frame").size().mean()
    print(f"cores available: {len(os.sched_getaffinity(0))}")
    print(f"simulate 1000 x 160x160 frames, {per_frame:.0f} emitters/frame "
          f"({per_frame / config.field_um2:.3f}/µm² measured): "
          f"best {min(timings):.2f} s, median {np.median(timings):.2f} s over {len(timings)} runs")
    print(f"write OME-TIFF ({frames.nbytes / 1e6:.0f} MB): {write_s:.2f} s")


if __name__ == "__main__":
    main()
