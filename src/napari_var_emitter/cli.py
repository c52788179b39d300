"""`var-emitter` command line: simulate, calibrate-psf, localize, predict, train, evaluate, filter,
demo, and the analysis commands (cli_analysis.py): drift, merge, resolution, render, stats."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import math
import os
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path

from .classical.localize import localize_stack
from .cli_analysis import add_analysis_commands
from .errors import InputError
from .evaluate.metrics import evaluate, format_report
from .fit.refine import PHANTOM_FDR
from .io.atomic import write_text_atomic
from .io.camera import MAP_FIELDS, Camera, resolve_camera
from .io.camera_check import check_camera_on_frames
from .io.camera_profile import read_camera_profile
from .io.emitters_h5 import is_emitters_h5, read_emitters_h5
from .io.localizations import H5_SUFFIXES, read_localizations, write_localizations
from .io.localizations_csv import read_localizations_csv, write_localizations_csv
from .io.outputs import check_free_space, check_outputs, file_stem, missing_folder
from .io.psf_file import pixel_size_warning, read_psf_file
from .io.stack import open_stack
from .model.config import DEFAULT_THRESHOLD
from .predict.options import MAP_MODES
from .psf import PSF
from .simulate.config import STRUCTURES, SimulationConfig, apply_overrides, load_config_file
from .simulate.dataset import simulate_dataset

# flag -> dotted config key, for the simulator's most used parameters
SIMULATE_FLAGS = {
    "n_frames": "n_frames", "frame_size": "frame_size", "density": "density_per_um2",
    "photons": "photons_mean", "background": "background_photons",
    "psf_sigma_nm": "psf.sigma_nm", "structure": "structure.kind",
    "pixel_size": "camera.pixel_size_nm", "em_gain": "camera.em_gain",
}
CAMERA_FLAGS = {
    "pixel_size": "pixel_size_nm", "baseline": "baseline_adu", "e_per_adu": "e_per_adu", "adu_per_e": "adu_per_e",
    "em_gain": "em_gain", "qe": "qe", "read_noise": "read_noise_e", "camera_type": "type",
    "offset_map": "offset_map", "variance_map": "variance_map", "gain_map": "gain_map",
}


# arguments that name files a command reads, and files it writes (simulate, train and demo write
# folders: their --out / out is not a file)
INPUT_ARGUMENTS = ("stack", "table", "pred", "truth", "model", "psf", "camera", "config", "init", *MAP_FIELDS)
OUTPUT_ARGUMENTS = ("out", "plot", "maps")
# what a command's --out (set_defaults(writes=...)), --plot and --maps must be named: a table written as
# CSV into "o.tif" was read later as an image stack ("predict on it first")
WRITES = {"table": ((".csv", *H5_SUFFIXES), "writes a table (.csv, or .h5 for HDF5)"),
          "calibration": ((".json",), "writes a PSF calibration (JSON)"),
          "tiff": ((".tif", ".tiff"), "writes a TIFF"), "plot": ((".png",), "draws its plot as PNG"),
          "maps": (H5_SUFFIXES, "writes its maps as HDF5")}
HDF5_OVERHEAD_BYTES = 1 << 16  # an HDF5 file's own structures, beside its (gzipped) arrays
COMPILE_NOTE_AFTER_S = 1.0  # the fits' compilation is said when it takes longer (loading them takes 0.3 s)


class ProgressLine:
    """A counter rewritten in place on stderr; end() closes its line (before any other message). Where stderr
    is no terminal (a batch job's log, where the counts ran together: "1/20 chunks2/20 chunks…"), a line of its
    own at most every LOG_EVERY_S seconds, and the last count held back at end()."""

    LOG_EVERY_S = 30.0

    def __init__(self) -> None:
        self.open, self.shown, self.held, self.logged_at = False, "", "", -float("inf")

    def show(self, text: str) -> None:
        if text == self.shown:  # progress is told after every pass of tiles, most alike
            return
        self.shown = text
        if not sys.stderr.isatty():
            self.held = text
            if time.monotonic() - self.logged_at >= self.LOG_EVERY_S:
                self._log()
            return
        print(f"\r{text}", end="", file=sys.stderr, flush=True)
        self.open = True

    def _log(self) -> None:
        print(self.held, file=sys.stderr, flush=True)
        self.held, self.logged_at = "", time.monotonic()

    def end(self) -> None:
        if self.held:
            self._log()
        if self.open:
            print(file=sys.stderr, flush=True)
            self.open = False
        self.shown = ""


PROGRESS = ProgressLine()


def main(argv: list[str] | None = None) -> int:
    """Run a command; every expected failure ends as one line "error: ..." and exit status 2
    (Ctrl-C: "interrupted", 130); --debug adds the traceback."""
    args = _parser().parse_args(argv)
    warnings.formatwarning = lambda message, *rest, **kw: f"{_end_progress()}warning: {message}\n"
    unraisable = sys.unraisablehook
    if not args.debug:  # e.g. h5py closing a file on a full disk after the error that is reported
        sys.unraisablehook = lambda _: None
    try:
        _check_files(args)
        new_folders = _missing_folders(args)
        status = args.run(args)
        for folder in new_folders if status == 0 else []:  # a mistyped folder is said, not made silently
            if folder.is_dir():
                print(f"made the folder {folder}", file=sys.stderr)
        return status
    except InputError as exc:
        return _fail(args, f"error: {exc}", 2)
    except KeyboardInterrupt as exc:
        return _fail(args, f"interrupted{f': {exc}' if str(exc) else ''}", 130)
    except BrokenPipeError as exc:  # stdout's reader stopped reading (`stats --json | head`): nothing to say
        if exc.filename:  # (a file that is a pipe: said as any file's error)
            return _fail(args, f"error: {exc.filename}: {exc.strerror}", 2)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (nor at exit, flushing)
        return 141  # as a shell reports a writer ended by SIGPIPE
    except OSError as exc:  # a full or read-only disk, a file that vanished, ...
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(args, f"error: {where}{exc.strerror or exc}", 2)
    except Exception as exc:  # a bug: say so in one line, the traceback behind --debug
        return _fail(args, f"error: internal error ({type(exc).__name__}: {exc}); run again with --debug for the "
                     "traceback, and please report it", 1)
    finally:
        PROGRESS.end()
        sys.unraisablehook = unraisable


def _end_progress() -> str:
    PROGRESS.end()
    return ""


def _fail(args, message: str, status: int) -> int:
    PROGRESS.end()
    gc.collect()  # objects of the failed work (an HDF5 file on a full disk) go now, while their complaints are muted
    if getattr(args, "debug", False):
        traceback.print_exc()
    print(" ".join(message.split())[:2000], file=sys.stderr)  # one line, however the library wrote it
    return status


def _check_files(args) -> None:
    """Before any work: no output is one of the inputs, a folder, or unwritable (io.outputs)."""
    if getattr(args, "writes_folder", False):
        return
    inputs = [getattr(args, name, None) for name in INPUT_ARGUMENTS]
    model = getattr(args, "model", None)
    if model is not None:
        from .model.checkpoint import card_path

        inputs.append(card_path(model))
    outputs = {f"--{name}": getattr(args, name, None) for name in OUTPUT_ARGUMENTS}
    check_outputs(inputs, outputs, getattr(args, "overwrite", True))
    command = args.run.__name__.lstrip("_").replace("_", "-")
    named = [("--out", getattr(args, "out", None), args.writes)] if getattr(args, "writes", None) else []
    named += [("--plot", getattr(args, "plot", None), "plot"), ("--maps", getattr(args, "maps", None), "maps")]
    for option, path, kind in named:
        suffixes, what = WRITES[kind]
        if path is not None and path.suffix.lower() not in suffixes:
            raise InputError(f"{option} {path}: {command} {what}; name it {file_stem(path.name)}{suffixes[0]}")


def _missing_folders(args) -> list[Path]:
    """The outermost folders that the outputs named on the command line will make (io.outputs.missing_folder;
    --out itself for the commands that write a folder)."""
    paths = [(getattr(args, name, None), False) for name in OUTPUT_ARGUMENTS]
    paths += [(getattr(args, "out", None), True)] if getattr(args, "writes_folder", False) else []
    folders = {missing_folder(path, is_folder) for path, is_folder in paths if path is not None}
    return sorted(folder for folder in folders if folder is not None)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="var-emitter", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    sim = commands.add_parser("simulate", help="write a simulated dataset (OME-TIFF + emitters.h5)")
    sim.add_argument("out", type=Path, help="output folder")
    sim.add_argument("--config", type=Path, help="JSON or YAML simulation config")
    sim.add_argument("--n-samples", type=int, default=100, help="stacks to write (default %(default)s)")
    sim.add_argument("--seed", type=int, default=0, help="(default %(default)s)")
    sim.add_argument("--n-frames", type=int, help="frames per stack (default: the config's, 100)")
    sim.add_argument("--frame-size", type=int, help="square frame size in pixels (default: the config's, 160)")
    sim.add_argument("--density", type=float, help="emitters per µm² per frame")
    sim.add_argument("--photons", type=float, help="mean photons per emitter per full frame")
    sim.add_argument("--background", type=float, help="background photons per pixel per frame")
    sim.add_argument("--psf-sigma-nm", type=float)
    sim.add_argument("--structure", choices=STRUCTURES)
    sim.add_argument("--pixel-size", type=float, help="nm")
    sim.add_argument("--em-gain", type=float)
    sim.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="any config value, e.g. psf.astigmatism=true (repeatable)")
    sim.add_argument("--overwrite", action="store_true", help="redo samples already done")
    sim.add_argument("--print-config", action="store_true", help="print the config and exit")
    sim.add_argument("--psf", type=Path, metavar="PSF.json",
                     help="simulate astigmatic 3-D data with this calibration (from calibrate-psf)")
    sim.set_defaults(run=_simulate, writes_folder=True)

    cal = commands.add_parser("calibrate-psf", help="fit an astigmatic PSF calibration to a bead z-stack -> JSON")
    cal.add_argument("stack", type=Path, help="bead z-stack, OME-TIFF / TIFF (ADU), one slice per z")
    cal.add_argument("--out", type=Path, required=True, help="calibration file (JSON) for --psf")
    cal.add_argument("--z-step", type=float, required=True, help="nm between slices")
    cal.add_argument("--z-start", type=float,
                     help="nm, z of the first slice (default: the stack is centred on focus)")
    _add_camera_flags(cal)
    cal.add_argument("--plot", type=Path, metavar="PNG", help="draw the widths, fitted curves and residuals")
    cal.set_defaults(run=_calibrate_psf, writes="calibration")

    loc = commands.add_parser("localize", help="classical reference localiser (DoG + MLE) -> CSV")
    loc.add_argument("stack", type=Path, help="OME-TIFF / TIFF stack (ADU)")
    loc.add_argument("--out", type=Path, required=True, help="output: CSV (ThunderSTORM layout), or .h5")
    _add_camera_flags(loc)
    loc.add_argument("--psf-sigma-nm", type=float, default=130.0)
    loc.add_argument("--snr", type=float, default=4.0, help="detection threshold")
    loc.add_argument("--psf", type=Path, metavar="PSF.json",
                     help="astigmatic calibration (calibrate-psf): fit x, y and z")
    loc.set_defaults(run=_localize, writes="table")

    ev = commands.add_parser("evaluate", help="score localisations against ground truth (SMLM Challenge metrics)")
    ev.add_argument("pred", type=Path, help="localisations: ours / ThunderSTORM / SMLM challenge CSV, our or "
                    "Picasso HDF5")
    ev.add_argument("truth", type=Path, help="emitters.h5 (with the Cramér-Rao bound), or a table in any layout "
                    "PRED takes (e.g. an SMLM challenge truth CSV)")
    ev.add_argument("--pixel-size", type=float, help="nm, for Picasso HDF5 files without their .yaml")
    ev.add_argument("--tolerance-nm", type=float, default=250.0,
                    help="lateral matching radius (default %(default)g nm)")
    ev.add_argument("--axial-tolerance-nm", type=float, default=500.0,
                    help="axial matching radius, 3-D (default %(default)g nm)")
    ev.add_argument("--min-photons", type=float,
                    help="score only true emitters this bright (matching still uses all)")
    ev.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ev.set_defaults(run=_evaluate)

    filt = commands.add_parser("filter", help="keep the localisations that meet conditions on their columns")
    filt.add_argument("table", type=Path, help="localisations in any layout evaluate takes")
    filt.add_argument("--out", type=Path, required=True, help="output: CSV (ThunderSTORM layout), or .h5")
    filt.add_argument("--where", action="append", default=[], metavar="EXPR", required=True,
                      help="e.g. 'photons > 500 and uncertainty_nm < 20' (repeatable; all must hold); the Filter "
                           "widget shows the expression for what it keeps")
    filt.add_argument("--pixel-size", type=float, help="nm, for Picasso HDF5 files without their .yaml")
    filt.set_defaults(run=_filter, writes="table")

    pred = commands.add_parser("predict", help="localise a stack with the VAR model -> CSV (+ maps)")
    pred.add_argument("stack", type=Path, help="OME-TIFF / TIFF stack (ADU)")
    pred.add_argument("--out", type=Path, required=True,
                      help="output: CSV (ThunderSTORM layout), or .h5 (HDF5, docs/formats.md)")
    _add_camera_flags(pred)
    pred.add_argument("--model", type=Path,
                      help="model weights (.safetensors), or 'fast' for the bundled fast 2-D model (a CPU-trained "
                      "U-Net, several times faster on a CPU); default: the bundled 2-D model, or with --psf the "
                      "bundled 3-D model")
    pred.add_argument("--psf", type=Path, metavar="PSF.json",
                      help="astigmatic calibration (calibrate-psf): localise in 3-D (x, y, z) with a 3-D model")
    pred.add_argument("--device", default="auto", help="auto (default: cuda where there is one), cpu or cuda")
    pred.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                      help="detection probability (integrated over 3x3 output cells; default %(default)g)")
    pred.add_argument("--maps", type=Path,
                      help="write probability maps to this HDF5 file (default with --mode: OUT's name + .maps.h5); "
                           "keeps every frame's maps in memory, not chunked")
    pred.add_argument("--mode", choices=MAP_MODES,
                      help="maps to write: every scale's map (progressive), the detection probability on the "
                           "2x output grid (super_resolution), or both; --maps alone means progressive")
    pred.add_argument("--batch-size", type=int, default=4,
                      help="frames read, and tiles run, at a time (default %(default)s; e.g. 16-32 on a GPU; a CPU "
                           "runs at most 65,536 pixels of tiles at a time)")
    pred.add_argument("--amp", action="store_true",
                      help="bfloat16 autocast (for GPUs; see docs/benchmarks.md for its accuracy)")
    pred.add_argument("--samples", type=int, default=1,
                      help="average maps and detection probability over N generations with sampled tokens "
                           "(N times slower; default 1 = argmax tokens)")
    pred.add_argument("--no-refine", dest="refine", action="store_false",
                      help="keep the network's positions (no maximum-likelihood refinement; for comparison)")
    pred.add_argument("--psf-sigma-nm", type=float,
                      help="PSF sigma the refinement fits with (default: estimated from the spots of the stack)")
    pred.add_argument("--bin", type=int, default=0, metavar="N",
                      help="bin camera pixels N x N in front of the network (default 0: where the PSF is wider "
                           "than the model was trained on, as its sigma asks; 1: never); the refinement fits "
                           "unbinned pixels")
    pred.add_argument("--phantom-fdr", type=float, default=PHANTOM_FDR,
                      help="refined localisations are tested against background only (phantoms on out-of-focus "
                           "light); per frame, the discoveries at this false-discovery rate are kept. Lower is "
                           "stricter; 0 keeps every one (default %(default)g)")
    pred.add_argument("--chunk-frames", type=int, default=256,
                      help="frames per chunk (default 256, rounded up to whole batches): each finished chunk "
                      "is saved, an interrupted run resumes")
    pred.add_argument("--restart", action="store_true",
                      help="discard the saved chunks of an unfinished run into OUT with other settings")
    pred.add_argument("--dask", metavar="local:N | tcp://HOST:PORT",
                      help="spread chunks over a Dask cluster (N local worker processes, or a scheduler)")
    pred.set_defaults(run=_predict, writes="table")

    tr = commands.add_parser("train", help="train (or fine-tune) the VAR model")
    tr.add_argument("--config", type=Path, required=True, help="training config JSON")
    tr.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, log, model)")
    tr.add_argument("--device", default="auto")
    tr.add_argument("--resume", action="store_true", help="continue from OUT/train_state.pt")
    tr.add_argument("--minutes", type=float, metavar="M",
                    help="stop at the first checkpoint after M minutes (continue later with --resume)")
    tr.add_argument("--export", action="store_true",
                    help="write OUT/model.safetensors from the run's last checkpoint and stop (the model so far of "
                    "a run in progress; continue it with --resume)")
    tr.add_argument("--init", type=_weights_or_bundled, metavar="WEIGHTS | bundled | bundled-3d",
                    help="start from these weights, or a bundled model's (fine-tuning)")
    tr.add_argument("--workers", type=int, default=0,
                    help="processes that make batches ahead (for GPUs; 0 = in the training process, reproducible)")
    tr.add_argument("--psf", type=Path, metavar="PSF.json",
                    help="train a 3-D model for this astigmatic calibration (from calibrate-psf): simulated "
                    "emitters at z through it, and a z output")
    tr.add_argument("--data", type=Path, help="simulated dataset folder (default: simulate on the fly)")
    tr.add_argument("--stack", type=Path, action="append", default=[], help="labelled stack (repeatable)")
    tr.add_argument("--labels", type=Path, action="append", default=[],
                    help="emitters.h5 or CSV for each --stack")
    tr.set_defaults(run=_train, writes_folder=True)

    demo = commands.add_parser("demo", help="simulate a stack, predict with the bundled model, evaluate")
    demo.add_argument("--out", type=Path, default=Path("demo_output"))
    demo.set_defaults(run=_demo, writes_folder=True)
    add_analysis_commands(commands)
    for command in commands.choices.values():
        if (any(action.dest in OUTPUT_ARGUMENTS for action in command._actions)
                and not command.get_default("writes_folder")):  # (the folder writers have their own rules)
            command.add_argument("--overwrite", action="store_true",
                                 help="replace output files that exist (without it they are refused: a result is "
                                 "never replaced by mistake)")
        command.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    return parser


def _add_camera_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("camera (the file's metadata, then --camera, then these flags; "
                                      "docs/user-guide.md step 2)")
    group.add_argument("--camera", type=Path, metavar="PROFILE.json",
                       help="camera profile (saved from the Predict widget, or written by hand: docs/formats.md)")
    group.add_argument("--pixel-size", type=float, help="nm in the sample plane")
    group.add_argument("--baseline", type=float, help="ADU")
    gain = group.add_mutually_exclusive_group()
    gain.add_argument("--e-per-adu", type=float, help="photo-electrons per ADU")
    gain.add_argument("--adu-per-e", type=float, help="ADU per photo-electron (the inverse; storm-analysis's gain)")
    group.add_argument("--em-gain", type=float, help="1 = no EM gain")
    group.add_argument("--qe", type=float, help="quantum efficiency, 0-1")
    group.add_argument("--read-noise", type=float, help="e- rms")
    group.add_argument("--camera-type", choices=("EMCCD", "sCMOS"))
    group.add_argument("--offset-map", help="sCMOS per-pixel offset, ADU (.npy or TIFF)")
    group.add_argument("--variance-map", help="sCMOS per-pixel read-noise variance, ADU^2 (.npy or TIFF)")
    group.add_argument("--gain-map", help="sCMOS per-pixel gain, ADU per e- (.npy or TIFF)")


def _simulate(args) -> int:
    raw = load_config_file(args.config) if args.config else {}
    flags = [f"{key}={json.dumps(getattr(args, flag))}" for flag, key in SIMULATE_FLAGS.items()
             if getattr(args, flag) is not None]
    if args.psf:
        psf, _ = read_psf_file(args.psf)
        flags.insert(0, f"psf={json.dumps(dataclasses.asdict(psf))}")
    raw = apply_overrides(raw, flags + args.set)
    if args.print_config:
        print(json.dumps(SimulationConfig.from_dict(raw).to_dict(), indent=2))
        return 0
    simulate_dataset(raw, args.out, args.n_samples, args.seed, overwrite=args.overwrite)
    return 0


def _stack_and_camera(args):
    """Open args.stack lazily; its camera from the file's metadata, then the profile, then the flags."""
    stack = open_stack(args.stack)
    flags = {key: getattr(args, flag) for flag, key in CAMERA_FLAGS.items()}
    profile = read_camera_profile(args.camera) if args.camera else {}
    camera = resolve_camera(stack.camera_metadata, profile, flags, context=str(args.stack))
    for message in check_camera_on_frames(camera, stack.frames):
        warnings.warn(message, stacklevel=1)
    return stack, camera


def _calibrate_psf(args) -> int:
    from .io.psf_file import write_psf_file
    from .psf_calibration.defocus import calibrate_psf

    stack, camera = _stack_and_camera(args)
    calibration = calibrate_psf(stack.frames, camera, args.z_step, args.z_start)
    summary = {"source": stack.path.name, **calibration.summary()}
    write_psf_file(args.out, calibration.psf, camera.pixel_size_nm, summary)
    if args.plot:
        from matplotlib.figure import Figure

        from .analysis.plots import save_png
        from .psf_calibration.plot import draw_psf_calibration

        figure = Figure(figsize=(6, 6))
        draw_psf_calibration(figure, calibration)
        save_png(figure, args.plot)
    psf = calibration.psf
    for name, curve in (("x", psf.curve_x), ("y", psf.curve_y)):
        print(f"sigma_{name}: sigma0 {curve.sigma0_nm:.1f} nm, focus {curve.focus_nm:+.1f} nm, "
              f"depth {curve.depth_nm:.1f} nm, A {curve.cubic:+.4f}, B {curve.quartic:+.4f}; "
              f"RMS residual {summary['residual_rms_nm'][name]:.2f} nm")
    print(f"{summary['beads']} beads, {summary['slices']} slices; the stack's z = 0 is at "
          f"{calibration.focal_offset_nm:+.1f} nm from the calibrated focus; "
          f"z range {psf.z_range_nm[0]:.0f} to {psf.z_range_nm[1]:.0f} nm -> {args.out}")
    return 0


def _calibration(calibration: tuple[PSF, float] | None, camera: Camera) -> PSF | None:
    """The PSF of a calibration read by read_psf_file (None without one), warning when it was
    measured on pixels of another size than the camera's."""
    if calibration is None:
        return None
    psf, calibrated_nm = calibration
    message = pixel_size_warning(calibrated_nm, camera.pixel_size_nm)
    if message:
        warnings.warn(message, stacklevel=1)
    return psf


def _localize(args) -> int:
    stack, camera = _stack_and_camera(args)
    psf = _calibration(read_psf_file(args.psf) if args.psf else None, camera)
    table = localize_stack(stack.frames, camera, sigma_nm=args.psf_sigma_nm, snr=args.snr, psf=psf)
    write_localizations(args.out, table)
    print(f"{len(table)} localisations in {stack.frames.shape[0]} frames -> {args.out}")
    return 0


def _compile_fits_saying_so() -> None:
    """Compile the refinement's fits before the run, saying so where it takes a while (the first
    run after installing; later runs load them from numba's cache)."""
    from .fit.scoring import compile_fits

    compiling = threading.Thread(target=compile_fits, daemon=True)
    compiling.start()
    compiling.join(COMPILE_NOTE_AFTER_S)
    if compiling.is_alive():
        print("preparing the fitting code: once after installing, about 15 s", file=sys.stderr)
        compiling.join()


def _predict(args) -> int:
    from .model.checkpoint import resolve_device
    from .predict import PredictOptions, predict
    from .predict.envelope import Envelope, bundled_alternatives
    from .predict.frames import SigmaNote, run_bin_px, with_psf_sigma
    from .predict.long_stack import dask_client, parts_folder, predict_stack_to_file
    from .predict.model_cache import cached_model

    maps_path = args.maps or (args.out.with_name(args.out.stem + ".maps.h5") if args.mode else None)
    mode = args.mode or "progressive"
    if maps_path and args.dask:
        raise InputError("maps (--maps, --mode) are written in one process: leave out --dask, or the maps")
    check_outputs([args.stack, args.out], {"the maps file": maps_path}, args.overwrite)
    calibration = read_psf_file(args.psf) if args.psf else None  # a bad file is named first
    stack, camera = _stack_and_camera(args)
    psf = _calibration(calibration, camera)
    options = PredictOptions(model=args.model, device=resolve_device(args.device), threshold=args.threshold,
                             batch_size=args.batch_size, amp=args.amp, samples=args.samples,
                             output_map=maps_path is not None and mode != "progressive", psf=psf,
                             refine=args.refine, psf_sigma_nm=args.psf_sigma_nm,
                             phantom_fdr=args.phantom_fdr, bin_px=args.bin)
    model, card = cached_model(options.weights, options.device)  # a bad file fails here, before any work
    options.check_model(model.config)
    if maps_path and not model.config.var_prior and mode != "super_resolution":  # (its file held nothing)
        raise InputError("this model makes no per-scale maps (the fast model finds emitters in one pass): use "
                         "--mode super_resolution for its detection probability on the 2x grid, or leave out "
                         "--maps and --mode")
    if options.refine:
        _compile_fits_saying_so()
    envelope, checked = Envelope.from_card(card), False
    sigma_said = options.refine and not model.config.with_z  # the PSF sigma, given or estimated, is said below
    for message in (envelope.input_warnings(camera, psf, sigma_said)
                    + envelope.stack_warnings(args.stack.name)
                    if envelope else []):
        warnings.warn(message, stacklevel=1)

    def inspect(table) -> None:
        """Check the measured photons and background once, on the first table with localisations."""
        nonlocal checked
        if envelope is not None and not checked and len(table):
            checked = True
            for message in envelope.measured_warnings(table, camera, bundled_alternatives(options.weights),
                                                      run_bin_px(model, options, camera)):
                warnings.warn(message, stacklevel=1)

    def report(done: int, total: int, seen: int | None = None) -> None:
        PROGRESS.show(f"{done}/{total} {'frames' if maps_path else 'chunks'}")

    def tell(note: SigmaNote | None) -> None:
        """The PSF sigma estimated for the refinement (a caution, or why there is none: a warning)."""
        if note is not None and note.caution:
            warnings.warn(note.text, stacklevel=1)
        elif note is not None:
            print(note.text, file=sys.stderr)

    def started(job) -> None:
        """A long stack's run has begun, with the options of its every chunk (the PSF sigma estimated); a run
        resumed says how far it had come."""
        nonlocal options
        options = job.options
        tell(job.said)
        done = len(job.ranges) - len(job.todo())
        if done:
            print(f"resuming: {done} of {len(job.ranges)} chunks were saved", file=sys.stderr)

    if maps_path:  # every frame's maps are kept until the end: for stacks that fit in memory
        from .io.atomic import atomic_paths
        from .io.maps_h5 import write_maps_h5

        options, note = with_psf_sigma(options, model, stack.frames, camera)
        tell(note)
        result = predict(stack.frames, camera, options, model, progress=report)
        inspect(result.table)
        arrays = (result.scale_maps if mode != "super_resolution" else []) + [result.output_map]
        check_free_space(maps_path, sum(a.nbytes for a in arrays if a is not None) + HDF5_OVERHEAD_BYTES)
        with atomic_paths(args.out, maps_path) as (table_tmp, maps_tmp):  # both replaced, or neither
            write_localizations(table_tmp, result.table)
            write_maps_h5(maps_tmp, result.scale_maps if mode != "super_resolution" else None, result.strides_px,
                          camera.pixel_size_nm, output_map=result.output_map, output_cell_px=result.output_cell_px)
        rows = len(result.table)
    else:
        parts = parts_folder(args.out)
        try:
            with dask_client(args.dask) if args.dask else contextlib.nullcontext() as client:
                rows = predict_stack_to_file(stack.path, camera, options, args.out, args.chunk_frames, client,
                                             progress=report, inspect=inspect, restart=args.restart,
                                             started=started)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(f"the chunks finished so far are kept in {parts}: run the same command again "
                                    "to resume" if parts.exists() else "") from None
    PROGRESS.end()
    print(f"{rows} localisations in {stack.frames.shape[0]} frames -> {args.out}"
          + (f" (maps: {maps_path})" if maps_path else ""))
    return 0


def _weights_or_bundled(value: str) -> Path:
    """A weights path, or "bundled" / "bundled-3d" for the bundled 2-D / 3-D model's."""
    from .model.checkpoint import BUNDLED, BUNDLED_3D

    return {"bundled": BUNDLED, "bundled-3d": BUNDLED_3D}.get(value, Path(value))


def _train(args) -> int:
    from .train.config import TrainConfig
    from .train.data import LabelledSource, SimulatedSource
    from .model.checkpoint import read_card, resolve_device
    from .train.loop import export_checkpoint, for_parent, train
    from .train.prefetch import PrefetchedSource

    config = TrainConfig.from_file(args.config)
    if args.psf:  # 3-D: the model learns z through this calibration
        calibration = read_psf_file(args.psf)[0]
        config = TrainConfig(model=dataclasses.replace(config.model, with_z=True), training=config.training,
                             simulation=dataclasses.replace(config.simulation, psf_calibration=calibration))
    if args.export:
        export_checkpoint(config, args.out, resolve_device(args.device), args.init)
        return 0
    if args.init:  # fine-tuning keeps the parent's architecture, which decides what a batch carries
        config = for_parent(config, *read_card(args.init))
    t = config.training
    if args.stack or args.labels:
        if len(args.stack) != len(args.labels):
            raise InputError("give one --labels for each --stack")
        source = LabelledSource.from_files(list(zip(args.stack, args.labels)), config.model, t.tile_px, t.seed)
    elif args.data:
        source = LabelledSource.from_dataset_folder(args.data, config.model, t.tile_px, t.seed)
    else:
        source = SimulatedSource(config.simulation, config.model, t.tile_px, t.seed)
    if args.workers < 0:
        raise InputError("--workers must be 0 or more")
    if args.workers:
        source = PrefetchedSource(source, args.workers)
    if args.minutes is not None and args.minutes <= 0:
        raise InputError("--minutes must be more than 0")
    try:
        train(config, args.out, source, device=resolve_device(args.device), resume=args.resume, init_weights=args.init,
              stop_after_s=None if args.minutes is None else 60 * args.minutes)
    finally:
        if args.workers:
            source.close()
    return 0


def _evaluate(args) -> int:
    for option, tolerance in (("--tolerance-nm", args.tolerance_nm), ("--axial-tolerance-nm", args.axial_tolerance_nm)):
        if not tolerance > 0:
            raise InputError(f"{option} {tolerance:g}: a match needs a radius above 0 nm")
    truth = (read_emitters_h5(args.truth) if is_emitters_h5(args.truth)
             else read_localizations(args.truth, args.pixel_size))
    report = evaluate(read_localizations(args.pred, args.pixel_size), truth,
                      args.tolerance_nm, args.axial_tolerance_nm, args.min_photons)
    # strict JSON: a figure there is none of (no match) is null, not NaN
    plain = {key: None if isinstance(value, float) and not math.isfinite(value) else value
             for key, value in report.items()}
    print(json.dumps(plain, indent=2) if args.json else format_report(report))
    return 0


def _filter(args) -> int:
    from .analysis.filter import filter_mask

    table = read_localizations(args.table, args.pixel_size)
    mask = filter_mask(table, " and ".join(w for w in args.where if w.strip()))
    write_localizations(args.out, table[mask])
    print(f"kept {int(mask.sum())} of {len(table)} localisations -> {args.out}")
    return 0


def _demo(args) -> int:
    """The main job end to end on a simulated stack with known ground truth: predict with the
    bundled model, write the CSV and a picture of the per-scale maps, evaluate (next to the
    classical reference)."""
    from .figures import plot_scale_maps
    from .predict import predict

    config = SimulationConfig(n_frames=20, density_per_um2=0.5, photons_mean=2000.0,
                              background_photons=50.0)
    status = simulate_dataset(config.to_dict(), args.out / "dataset", n_samples=1, seed=2026,
                              overwrite=True)
    sample = args.out / "dataset" / status["samples"][0]["name"]
    stack = open_stack(sample / f"{sample.name}.ome.tiff")
    camera = resolve_camera(stack.camera_metadata, context=str(stack.path))
    truth = read_emitters_h5(sample / "emitters.h5")
    result = predict(stack.frames, camera)
    csv_path = args.out / "localizations.csv"
    write_localizations_csv(csv_path, result.table)
    picture = args.out / "scale_maps.png"
    plot_scale_maps(camera.adu_to_photons(stack.frames[0]), [m[0] for m in result.scale_maps],
                    result.strides_px, camera.pixel_size_nm, result.table[result.table["frame"] == 0],
                    picture, truth=truth.emitters[truth.emitters["frame"] == 0])
    reports = {"var_model": evaluate(read_localizations_csv(csv_path), truth),
               "classical_reference": evaluate(localize_stack(stack.frames, camera, config.psf.sigma_nm), truth)}
    write_text_atomic(args.out / "evaluation.json", json.dumps(reports, indent=2))
    for name, report in reports.items():
        print(f"\n{name} on {sample.name} ({stack.frames.shape[0]} frames):")
        print(format_report(report))
    print(f"\nlocalisations: {csv_path}\nper-scale maps of frame 1: {picture}")
    return 0
