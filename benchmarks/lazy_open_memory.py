"""Peak memory of opening a large OME-TIFF lazily and reading frames from it.

Writes a 10,000-frame 256x256 uint16 stack (1.3 GB) streamed from dask, then, in a fresh
process, opens it, reads the first, middle and last frame and sums every frame one at a
time. Prints file size and that process's peak resident memory. Asserts nothing.

Run: .venv/bin/python benchmarks/lazy_open_memory.py [FOLDER]
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import dask.array as da
import numpy as np

from napari_var_emitter.io.camera import Camera
from napari_var_emitter.io.tiff import write_ome_tiff

READER = """
import resource, sys, time
import numpy as np
from napari_var_emitter.io.tiff import read_stack
start = time.perf_counter()
stack = read_stack(sys.argv[1])
opened = time.perf_counter() - start
frames = stack.frames
picks = [np.asarray(frames[i]) for i in (0, len(frames) // 2, len(frames) - 1)]
total = sum(int(np.asarray(frames[i]).sum(dtype=np.int64)) for i in range(len(frames)))
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"opened {frames.shape} {frames.dtype} in {opened:.2f} s; read every frame one at a time;"
      f" peak resident memory {peak_mb:.0f} MB")
"""


def main(folder: Path) -> None:
    path = folder / "large.ome.tiff"
    shape = (10_000, 256, 256)
    frames = da.random.default_rng(0).integers(90, 400, shape, chunks=(1, 256, 256), dtype=np.uint16)
    write_ome_tiff(path, frames, Camera())
    print(f"file: {path.stat().st_size / 1e9:.2f} GB ({shape[0]} frames of {shape[1]}x{shape[2]})")
    subprocess.run([sys.executable, "-c", READER, str(path)], check=True)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
