"""Peak memory of `var-emitter predict`'s chunked path on a 20,000-frame 256x256 stack.

Writes the stack (2.6 GB OME-TIFF: 64 simulated frames, 0.5 emitters/µm², repeated), then, in a
fresh process, runs the chunked prediction (what `var-emitter predict` does without --maps),
prints resident and peak host memory (and peak GPU memory on CUDA) after each chunk, and
interrupts it after --chunks chunks (0: the whole stack, which takes hours on 2 CPU cores and
minutes on a GPU). The interrupted run's finished chunks stay on disk for a resume. Asserts nothing.

Run: .venv/bin/python benchmarks/large_stack_memory.py [--chunks 3] [--chunk-frames 32]
     [--device cuda] [--batch-size 4] [--amp] [FOLDER]
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

N_FRAMES = 20_000
RUNNER = """
import os, resource, sys, time
import torch
from napari_var_emitter.io.camera import Camera
from napari_var_emitter.predict import PredictOptions
from napari_var_emitter.predict.long_stack import predict_stack_to_file
path, out, n_frames, chunks, chunk_frames, device, batch_size, amp = sys.argv[1:]
n_frames, chunks, chunk_frames = int(n_frames), int(chunks), int(chunk_frames)
camera = Camera(e_per_adu=0.5, read_noise_e=1.5)
options = PredictOptions(threshold=0.3, device=device, batch_size=int(batch_size), amp=amp == "amp")
start, ran = time.perf_counter(), []
def report(done, total):
    ran.append(done)  # chunks run by this process (a resumed run skips the finished ones)
    rss = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    frames = min(done * chunk_frames, n_frames)
    gpu = f", GPU peak {torch.cuda.max_memory_allocated() / 1e6:.0f} MB" if device.startswith("cuda") else ""
    print(f"chunk {done}/{total}: {frames} frames, "
          f"{len(ran) * chunk_frames / (time.perf_counter() - start):.2f} frames/s, "
          f"resident {rss:.0f} MB, peak {peak:.0f} MB{gpu}", flush=True)
    if done == chunks:
        raise SystemExit(0)
rows = predict_stack_to_file(path, camera, options, out, chunk_frames, progress=report)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"whole stack: {rows} localisations in {time.perf_counter() - start:.0f} s, peak {peak:.0f} MB", flush=True)
import pandas as pd
frames = pd.read_csv(out, usecols=["frame"])["frame"]
print(f"CSV: frames {frames.min()}..{frames.max()} (1-based), {frames.nunique()} distinct, {len(frames)} rows")
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", nargs="?")
    parser.add_argument("--chunks", type=int, default=3)
    parser.add_argument("--chunk-frames", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=4, help="frames read and tiles run at a time")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.folder) as tmp:
        path = Path(tmp) / "large.ome.tiff"
        camera = Camera(e_per_adu=0.5, read_noise_e=1.5)
        block, _ = simulate_stack(SimulationConfig(frame_size=(256, 256), n_frames=64, density_per_um2=0.5,
                                                   camera=camera), np.random.default_rng(0))
        frames = da.concatenate([da.from_array(block, chunks=(1, 256, 256))] * (N_FRAMES // 64 + 1))[:N_FRAMES]
        write_ome_tiff(path, frames, camera)
        print(f"file: {path.stat().st_size / 1e9:.2f} GB ({frames.shape[0]} frames of 256x256)", flush=True)
        subprocess.run([sys.executable, "-c", RUNNER, str(path), str(Path(tmp) / "locs.csv"), str(N_FRAMES),
                        str(args.chunks), str(args.chunk_frames), args.device, str(args.batch_size),
                        "amp" if args.amp else "fp32"], check=True)


if __name__ == "__main__":
    main()
