"""Peak memory of `var-emitter predict`'s chunked path on a 20,000-frame 256x256 stack.

Writes the stack (2.6 GB OME-TIFF: 64 simulated frames, 0.5 emitters/µm², repeated), then, in a
fresh process, runs the chunked prediction (what `var-emitter predict` does without --maps),
prints resident and peak memory after each chunk, and interrupts it after a few chunks (the
whole stack would take hours on 2 CPU cores; memory does not grow with chunks, see the output).
The interrupted run's finished chunks stay on disk for a resume. Asserts nothing.

Run: .venv/bin/python benchmarks/large_stack_memory.py [--chunks 3] [--chunk-frames 32] [FOLDER]
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import dask.array as da
import numpy as np

from napari_var_emitter.io.camera import Camera
from napari_var_emitter.io.tiff import write_ome_tiff
from napari_var_emitter.simulate.config import SimulationConfig
from napari_var_emitter.simulate.stack import simulate_stack

RUNNER = """
import os, resource, sys, time
from napari_var_emitter.large_stack import predict_stack_to_file
from napari_var_emitter.io.camera import Camera
path, out, chunks, chunk_frames = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
job = {"stack": path, "camera": Camera(e_per_adu=0.5, read_noise_e=1.5).to_dict(), "model": None,
       "threshold": 0.3, "device": "cpu", "batch_size": 4, "amp": False}
start = time.perf_counter()
def report(done, total):
    rss = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    frames = done * chunk_frames
    print(f"chunk {done}/{total}: {frames} frames, {frames / (time.perf_counter() - start):.2f} frames/s, "
          f"resident {rss:.0f} MB, peak {peak:.0f} MB", flush=True)
    if done == chunks:
        raise SystemExit(0)
predict_stack_to_file(job, out, chunk_frames, progress=report)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", nargs="?")
    parser.add_argument("--chunks", type=int, default=3)
    parser.add_argument("--chunk-frames", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.folder) as tmp:
        path = Path(tmp) / "large.ome.tiff"
        camera = Camera(e_per_adu=0.5, read_noise_e=1.5)
        block, _ = simulate_stack(SimulationConfig(frame_size=(256, 256), n_frames=64, density_per_um2=0.5,
                                                   camera=camera), np.random.default_rng(0))
        frames = da.concatenate([da.from_array(block, chunks=(1, 256, 256))] * (20_000 // 64 + 1))[:20_000]
        write_ome_tiff(path, frames, camera)
        print(f"file: {path.stat().st_size / 1e9:.2f} GB ({frames.shape[0]} frames of 256x256)", flush=True)
        subprocess.run([sys.executable, "-c", RUNNER, str(path), str(Path(tmp) / "locs.csv"), str(args.chunks),
                        str(args.chunk_frames)], check=True)


if __name__ == "__main__":
    main()
