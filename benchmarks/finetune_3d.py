"""Fine-tuning the bundled 3-D model to one microscope's calibration: how long it takes and what it
gains, on the grid cells of that calibration (benchmarks/astigmatic_3d.py's grid_cells).

1. The calibration recovered from its simulated beads, as grid_cells recovers it, written to
   RUN/psf.json (kept if there).
2. Unless RUN/model.safetensors exists: var-emitter train --config configs/finetune_3d_cpu.json
   --init bundled-3d --psf RUN/psf.json --out RUN --device DEVICE, timed.
3. The bundled model, the fine-tuned one (both at --threshold) and the classical 3-D fit on the
   calibration's three grid cells (0.1 / 0.5 / 2 per µm²); then the z bias by depth of both models.

Run: .venv/bin/python benchmarks/finetune_3d.py --run runs/ft3d [--calibration wide-shallow]
     [--threshold 0.25] [--device cpu]
(prints tables; asserts nothing)
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from astigmatic_3d import AXES, BEAD_CAMERA, OWN_CALIBRATIONS, grid_calibration, grid_cells
from astigmatic_3d_model import print_z_bias, score_row
from napari_var_emitter.classical.localize import localize_stack
from napari_var_emitter.cli import main as cli
from napari_var_emitter.io.psf_file import read_psf_file, write_psf_file
from napari_var_emitter.model.checkpoint import BUNDLED_3D, load_model
from napari_var_emitter.predict import PredictOptions, predict_frames

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "finetune_3d_cpu.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="run folder (calibration, checkpoints, model)")
    parser.add_argument("--calibration", choices=tuple(OWN_CALIBRATIONS), default=next(iter(OWN_CALIBRATIONS)))
    parser.add_argument("--threshold", type=float, default=0.25, help="detection threshold of both models")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=100, help="frames per grid cell")
    args = parser.parse_args()
    psf_path, weights = args.run / "psf.json", args.run / "model.safetensors"
    if not psf_path.exists():
        args.run.mkdir(parents=True, exist_ok=True)
        write_psf_file(psf_path, grid_calibration(args.calibration), 100.0,
                       {"beads": f"simulated through {args.calibration} (astigmatic_3d.grid_calibration)"})
    if not weights.exists():
        started = time.perf_counter()
        if cli(["train", "--config", str(CONFIG), "--init", "bundled-3d", "--psf", str(psf_path),
                "--out", str(args.run), "--device", args.device]) != 0:
            raise SystemExit("fine-tuning stopped (the message above says why)")
        print(f"fine-tuning took {(time.perf_counter() - started) / 60:.1f} min (command, wall clock)")
    tuned, card = load_model(weights)
    training = card["training"]
    print(f"fine-tuned {weights}: {training['steps']} steps on {training['device']}, "
          f"training loop {training['wall_s'] / 60:.1f} min")
    bundled = load_model(BUNDLED_3D)[0]
    print(f"\n{'calibration':<13} {'/µm²':>5} {'method':<10} " + " ".join(f"{a:>17}" for a in AXES) + "  frames/s")
    for name, density, psf, frames, truth in grid_cells(args.frames, names=(args.calibration,)):
        options = PredictOptions(psf=psf, threshold=args.threshold)
        for method, run in (("bundled", lambda: predict_frames(bundled, frames, BEAD_CAMERA, options).table),
                            ("fine-tuned", lambda: predict_frames(tuned, frames, BEAD_CAMERA, options).table),
                            ("classical", lambda: localize_stack(frames, BEAD_CAMERA, psf=psf))):
            print(f"{name:<13} {density:5.1f} {method:<10} " + score_row(run, frames, truth), flush=True)
    psf = dataclasses.replace(read_psf_file(psf_path)[0], z_range_nm=(-500.0, 500.0))
    for label, model in (("bundled", bundled), ("fine-tuned", tuned)):
        print_z_bias(model, psf, f"{label}, {args.calibration} calibration from beads", args.threshold)


if __name__ == "__main__":
    main()
