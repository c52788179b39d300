"""Prediction throughput (frames/s), the whole pipeline from an OME-TIFF on disk to the
localisation table in one run, the peak memory, and the accuracy of the same run against its
simulated truth (so float32 and bfloat16 autocast can be compared).

With --psf, astigmatic stacks through that calibration, localised in 3-D (the bundled 3-D
model unless --model says otherwise), for the 3-D model's speed against the 2-D model's.

With --breakdown, a second line per size splits the run's time into the model's generation
(synchronised on a GPU, which slows the run a little) and everything else the main thread
waits for: tiling, post-processing, the table and (with --to-file) the files, which run on the
host whatever the device, and the part of reading and the camera model that the background
reader has not finished by then.

With --to-file csv|h5, the run is that of `var-emitter predict STACK --out OUT.csv|h5` (chunks
of --chunk-frames saved as parts, then merged into the file), scored from the file it wrote.

Run: .venv/bin/python benchmarks/predict_speed.py [--device cpu|cuda] [--threads N]
     [--model PATH] [--psf PSF.json] [--batch-size N] [--amp] [--sizes 160 256] [--frames N]
     [--breakdown] [--to-file csv|h5] [--chunk-frames N]
Prints one line per frame size; asserts nothing.
"""

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from napari_var_emitter.evaluate.metrics import evaluate
from napari_var_emitter.io.camera import Camera, resolve_camera
from napari_var_emitter.io.localizations import read_localizations
from napari_var_emitter.io.psf_file import read_psf_file
from napari_var_emitter.io.tiff import read_stack, write_ome_tiff
from napari_var_emitter.predict import PredictOptions, predict
from napari_var_emitter.predict.long_stack import predict_stack_to_file
from napari_var_emitter.predict.model_cache import cached_model
from napari_var_emitter.simulate.config import SimulationConfig
from napari_var_emitter.simulate.stack import simulate_stack


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--model", help="weights (default: bundled)")
    parser.add_argument("--psf", help="astigmatic calibration (calibrate-psf): 3-D stacks and prediction")
    parser.add_argument("--batch-size", type=int, default=4, help="frames read and tiles run at a time")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast")
    parser.add_argument("--sizes", type=int, nargs="+", default=[160, 256])
    parser.add_argument("--breakdown", action="store_true", help="time in the model's generation against the rest")
    parser.add_argument("--to-file", choices=("csv", "h5"), help="the CLI's path: chunks, parts, then this file")
    parser.add_argument("--chunk-frames", type=int, default=256, help="frames per chunk with --to-file (the CLI's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    psf = read_psf_file(args.psf)[0] if args.psf else None
    options = PredictOptions(model=args.model, device=args.device, batch_size=args.batch_size, amp=args.amp, psf=psf)
    model, _ = cached_model(options.weights, options.device)
    generation = GenerationTimer(model, args.device.startswith("cuda")) if args.breakdown else None
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{args.threads} CPU threads"
    print(f"{options.weights.name}: device {args.device} ({name}), torch {torch.__version__}, batch {args.batch_size}, "
          f"{'bfloat16 autocast' if args.amp else 'float32'}")
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            config = SimulationConfig(frame_size=size, n_frames=args.frames, density_per_um2=1.0,
                                      camera=Camera(e_per_adu=0.5), **({"psf": psf} if psf else {}))
            frames, truth = simulate_stack(config, np.random.default_rng(0))
            path = Path(folder) / f"stack_{size}.ome.tiff"
            write_ome_tiff(path, frames, truth.camera)
            predict(frames[:args.batch_size], truth.camera, options, model)  # warm-up
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            if generation is not None:
                generation.seconds = 0.0
            started = time.perf_counter()
            stack = read_stack(path)  # from the file on disk, as the CLI does
            camera = resolve_camera(stack.camera_metadata, warn=False)
            if args.to_file:
                out = Path(folder) / f"locs_{size}.{args.to_file}"
                predict_stack_to_file(path, camera, options, out, args.chunk_frames)
            else:
                table = predict(stack.frames, camera, options, model).table
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - started
            if args.to_file:
                table = read_localizations(out)
            report = evaluate(table, truth)
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"{size}x{size}: {args.frames / elapsed:.2f} frames/s ({elapsed / args.frames * 1000:.0f} ms/frame); "
                  f"Jaccard {report['jaccard']:.2f} %, RMSE {report['rmse_lateral_nm']:.2f} nm, "
                  + (f"axial RMSE {report['rmse_axial_nm']:.1f} nm, " if "rmse_axial_nm" in report else "")
                  + f"{len(table)} localisations{f' into {out.name}' if args.to_file else ''}; "
                  f"peak resident memory so far {peak_mb:.0f} MB", flush=True)
            if generation is not None:
                print(f"    model generation {generation.seconds / args.frames * 1000:.1f} ms/frame, everything else "
                      f"{(elapsed - generation.seconds) / args.frames * 1000:.1f} ms/frame", flush=True)


class GenerationTimer:
    """Wraps model.generate of one model instance and sums the seconds spent in it."""

    def __init__(self, model, synchronise: bool):
        self.seconds, generate = 0.0, model.generate

        def timed(*args, **kwargs):
            started = time.perf_counter()
            out = generate(*args, **kwargs)
            if synchronise:
                torch.cuda.synchronize()
            self.seconds += time.perf_counter() - started
            return out

        model.generate = timed


if __name__ == "__main__":
    main()
