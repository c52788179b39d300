"""Whole frames -> localisations and per-scale maps: tiles through the model in batches, then
post-processing and stitching (predict/tiling.py)."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pandas as pd
import torch

from ..errors import InputError
from ..fit.joint import AstigmaticSpots, RoundSpots, SpotModel
from ..fit.psf_sigma import estimate_sigma_px
from ..fit.refine import refine_table
from ..io.camera import Camera, frames_to_photons
from ..io.tiff import read_here
from ..model.condition import calibration_vector
from ..model.config import DEFAULT_THRESHOLD, ModelConfig
from ..model.context import context_reach, with_context
from ..model.head import LOGIT, head_maps
from ..model.predictor import VAREmitterPredictor
from .canonical import bin_factor, bin_photons, binned_sigma_px
from .envelope import FINE_TUNE_HINT, Envelope, bundled_alternatives
from .model_cache import cached_model
from .options import PredictOptions
from .postprocess import maps_to_table
from .tiling import TileLayout, default_tile_px, paste

# the first frames of a run, whose detections the PSF sigma is estimated from once for the whole
# run (with_psf_sigma: the CLI's, the widgets', a StackJob's, a predict call's without it): at
# least SIGMA_FRAMES, and as many as hold SIGMA_PIXELS (small frames hold few spots each)
SIGMA_FRAMES, SIGMA_PIXELS = 8, 8 * 128 * 128
SIGMA_TOLERANCE = 0.1  # spots this much narrower than the model's narrowest are said to lie outside what it knows

# pixels of tiles one pass of the model takes on a CPU (one 256 x 256 frame, two 160 x 160 ones):
# larger passes outgrow the cache and run slower per pixel (docs/benchmarks.md, "Tiles and
# passes on a CPU")
CPU_PIXELS_PER_PASS = 1 << 16
# in 2-D the refinement takes the detections of consecutive batches together, up to about
# REFINE_DETECTIONS of them in at most REFINE_PIXELS pixels of frames: its fits are batched, and
# cost less per detection in larger batches (2 cores, 160x160 frames at 1 /µm²: 74 ms per frame
# in batches of 4 frames, 57 in batches of 40). In 3-D a batch alone: there each batch of fits is
# large already (wide defocused spots; 862 ms per 160x160 frame in batches of 4 frames, 1,048 in
# batches of 20), and the test against background only sizes its windows for the widest spot it
# is given. The refinement runs in a thread beside the network's next batches, at most
# REFINING_AHEAD chunks behind it (each holds its frames' photons until it is done); on a CPU the
# two share the cores (_SharedCores)
REFINE_DETECTIONS = 8000
REFINE_PIXELS = 64 * 256 * 256
REFINING_AHEAD = 2


@dataclasses.dataclass
class Prediction:
    """table: localisations (frame, x_nm, y_nm, photons, background, uncertainty_nm,
    probability); scale_maps: per scale, (T, h, w) probabilities with token stride
    `strides_px[s]` camera pixels (cell (0, 0) covers [0, stride) px); output_map: the
    detection probability on the output grid, cells of output_cell_px camera pixels (the
    network's pixel / upscale), if asked for."""

    table: pd.DataFrame
    scale_maps: list[np.ndarray]
    strides_px: tuple[int, ...]
    output_map: np.ndarray | None = None
    output_cell_px: float = 0.5


def predict(frames_adu, camera: Camera, options: PredictOptions = PredictOptions(),
            model: VAREmitterPredictor | None = None, progress: Callable[..., None] | None = None) -> Prediction:
    """Localise (T, H, W) ADU frames (numpy or dask) with `model`, or with options.weights (a
    bundled model when options.model is None) from the process's model cache."""
    if model is None:
        model = cached_model(options.weights, options.device)[0]
    return predict_frames(model, frames_adu, camera, options, progress=progress)


@torch.no_grad()
def predict_frames(model: VAREmitterPredictor, frames_adu, camera: Camera,
                   options: PredictOptions = PredictOptions(), first_frame: int = 0,
                   progress: Callable[..., None] | None = None,
                   span: tuple[int, int] | None = None) -> Prediction:
    """Localise (T, H, W) ADU frames (numpy, dask or any lazy array), or with `span` = (a, b) only
    frames_adu[a:b], the frames around them read only as the context frames a model may see beside
    each (model.context: a chunk of a stack gives what the whole stack gives); `first_frame` is
    the index of frames_adu[0] in its stack (the table's frame column counts from it). Runs where
    the model's weights are.

    `options.batch_size` frames are read at a time (the next batch in a background thread while
    the model works on this one); the tiles at one place in those frames go through the model
    together (on a CPU, at most CPU_PIXELS_PER_PASS pixels of them per pass), and the refinement
    of a batch's detections (in 2-D gathered with those of the batches after it, REFINE_DETECTIONS)
    runs in a thread while the model works on the next ones (REFINING_AHEAD), the last in two
    threads once the model is done (_halves); amp runs
    the model in bfloat16 autocast (a GPU option: docs/benchmarks.md compares its accuracy with
    float32). progress(frames done, frames in all[, frames through the network, in parts of
    frames after each pass of tiles]) is called after every pass of tiles through the model and
    every batch (where it raises, the run stops).
    samples = N > 1 averages the maps and the detection probability over N generations with
    tokens sampled at temperature 1 (seeded by each batch's first frame index, so the same call
    repeats exactly)."""
    config = model.config
    calibration = None
    if config.psf_condition:
        if options.psf is None:
            raise InputError("this 3-D model takes your microscope's PSF calibration as an input: give it "
                             "(--psf PSF.json, from calibrate-psf)")
        calibration = torch.from_numpy(calibration_vector(options.psf))[None]
    begin, end = span or (0, len(frames_adu))
    if config.context_frames and len(frames_adu) == 1:
        envelope = Envelope.from_card(model.card)  # read only where it decides the warning
        if not (envelope and envelope.single_images):
            warnings.warn("this model looks at each frame beside the frames before and after it: with one frame it "
                          "sees that frame as its own neighbours, which it was not trained on; give it the stack",
                          stacklevel=2)
    options, note = with_psf_sigma(options, model, frames_adu[begin:end], camera)  # as for a whole run, when not given
    if note is not None and note.caution:
        warnings.warn(note.text, stacklevel=2)
    spots = refinement_spots(options, config, camera)
    binned = run_bin_px(model, options, camera)
    strides, up = config.token_strides_px, config.upscale
    n = end - begin
    height, width = (-(-side // binned) for side in frames_adu.shape[1:])  # the network's frame
    layout = TileLayout.plan(height, width, strides[0], options.tile_px or default_tile_px(config), options.margin_px)
    strides = strides if config.var_prior else ()  # the no-VAR baseline has no per-scale maps
    device = next(model.parameters()).device
    px, margin = camera.pixel_size_nm * binned, layout.margin  # the network's pixel
    maps = [np.zeros((n, -(-height // s), -(-width // s)), np.float32) for s in strides]
    fine = np.zeros((n, height * up, width * up), np.float32) if options.output_map else None
    tables, constant = [], []
    refining: collections.deque[tuple[int, Future | None]] = collections.deque()  # (frames done then, refinement)
    waiting = _Waiting(REFINE_DETECTIONS if isinstance(spots, RoundSpots) else 0)  # batches the refinement waits for
    finished = 0  # frames done: refined (or not to be)
    with (contextlib.closing(_read_ahead(frames_adu, (begin, end), camera, options.batch_size, first_frame, device,
                                        config.context_frames)) as batches,
          ThreadPoolExecutor(1, thread_name_prefix="refine") as refiner,
          ThreadPoolExecutor(1, thread_name_prefix="refine-last") as finisher,
          contextlib.closing(_SharedCores(device, spots is not None)) as cores):
        for start, photons_BFHW, constant_B in batches:
            constant.extend(start + np.flatnonzero(constant_B))
            in_batch = len(tables)
            b = len(photons_BFHW)
            tiles = layout.cut(bin_photons(photons_BFHW, binned))  # tile ti of the batch's frame j is row ti * b + j
            per_pass = _tiles_per_pass(tiles, options.batch_size)
            seed = first_frame + begin + start  # the batch's first frame in its stack
            generator = torch.Generator(device).manual_seed(seed) if options.samples > 1 else None
            for ti, (r, c) in enumerate(layout.origins):
                for j in range(0, b, per_pass):  # the tiles of frames start + j, ... (in this call)
                    part = tiles[ti * b + j:ti * b + min(b, j + per_pass)]
                    probs, head = _generate(model, part, options, generator, calibration)
                    named, in_call = head_maps(head), slice(start + j, start + j + len(part))
                    if fine is not None:
                        cut = margin * up
                        paste(fine[in_call, r * up:(r + layout.core_h) * up, c * up:(c + layout.core_w) * up],
                              named["prob"][:, cut:, cut:].cpu().numpy())
                    table = maps_to_table(named, options.threshold, px / up, np.arange(in_call.start, in_call.stop),
                                          origin_nm=((c - margin) * px, (r - margin) * px))
                    tables.append(table[layout.in_core(table["x_nm"] / px, table["y_nm"] / px, (r, c))])
                    for si, s in enumerate(strides):
                        m, p = margin // s, probs[si]
                        block = p[:, 0, m:p.shape[2] - m, m:p.shape[3] - m].cpu().numpy()
                        paste(maps[si][in_call, r // s:r // s + block.shape[1], c // s:c // s + block.shape[2]], block)
                    if progress is not None:  # after every pass, so that a Cancel is heard within one; the
                        done_tiles = ti * b + j + len(part)  # frames through the network in parts of frames
                        progress(finished, n, start + done_tiles / len(layout.origins))
            if binned > 1 and len(tables) > in_batch:  # detections in the repeated edge of a binned frame
                found = pd.concat(tables[in_batch:], ignore_index=True)
                found = found[(found["x_nm"] < frames_adu.shape[2] * camera.pixel_size_nm)
                              & (found["y_nm"] < frames_adu.shape[1] * camera.pixel_size_nm)]
                if "background" in found:  # the network's photons per binned pixel, per camera pixel
                    found = found.assign(background=found["background"] / binned ** 2)
                tables[in_batch:] = [found]
            if spots is None:
                refining.append((start + b, None))
            else:  # the MLE refinement of the detections of this batch and those waiting before it
                waiting.add(tables, in_batch, start, photons_BFHW[:, 0].cpu().numpy())  # the frames themselves
                if waiting.full() or start + b == n:
                    chunk_start, photons_THW = waiting.take()
                    found = pd.concat(tables[waiting.first:], ignore_index=True)
                    # the last chunk in two parts at once: the network is done, both cores are free
                    ends = _halves(len(photons_THW), options.batch_size) if start + b == n else [len(photons_THW)]
                    tables[waiting.first:] = []
                    for executor, first, stop in zip((finisher, refiner), [0, *ends[:-1]], ends):
                        in_part = found["frame"].between(chunk_start + first, chunk_start + stop - 1)
                        refinement = executor.submit(_refine_batch, found[in_part], chunk_start + first,
                                                     photons_THW[first:stop], camera, spots, options,
                                                     config.context_frames > 0)
                        tables.append(refinement)
                        refining.append((chunk_start + stop, refinement))
            cores.after_batch(refining)
            told = False
            while refining and (len(refining) > REFINING_AHEAD or refining[0][1] is None):
                finished, told = _finish(refining.popleft(), n, progress, start + b), True
            if progress is not None and not told:  # told at every batch, so that a Cancel is heard
                progress(finished, n, start + b)
        while refining:
            _finish(refining.popleft(), n, progress, n)
    first_frame += begin  # frames_adu[begin]'s index in its stack
    tables = [t.result() if isinstance(t, Future) else t for t in tables]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    if constant:  # an empty or failed acquisition's frames: nothing to find (the network would guess)
        warnings.warn(f"frame(s) {_listed(first_frame + np.array(constant) + 1)} (1-based) hold one value "
                      "everywhere: no localisations there", stacklevel=2)
        if len(table):
            table = table[~np.isin(table["frame"].to_numpy(), constant)]
    if len(table):
        table["frame"] += first_frame
        table = table.sort_values(["frame", "y_nm", "x_nm"], ignore_index=True)
    return Prediction(table, maps, tuple(s * binned for s in strides), fine, binned / up)


class _Waiting:
    """The batches whose detections wait to be refined together, until they hold `enough`
    detections (0: every batch alone) or REFINE_PIXELS pixels of frames: `first` the index of their
    first table in the run's list of tables, their frames' photons and the first frame's index."""

    def __init__(self, enough: int):
        self.enough, self.first, self.start, self.photons, self.detections = enough, 0, 0, [], 0

    def add(self, tables: list[pd.DataFrame], in_batch: int, start: int, photons_BHW: np.ndarray) -> None:
        """One batch more: its tables tables[in_batch:], its first frame's index, its photons."""
        if not self.photons:
            self.first, self.start = in_batch, start
        self.photons.append(photons_BHW)
        self.detections += sum(len(table) for table in tables[in_batch:])

    def full(self) -> bool:
        """Whether they are enough to refine."""
        return self.detections >= self.enough or sum(p.size for p in self.photons) >= REFINE_PIXELS

    def take(self) -> tuple[int, np.ndarray]:
        """(first frame's index, (T, H, W) photons) of the batches waiting, emptied."""
        start, photons = self.start, np.concatenate(self.photons)
        self.photons, self.detections = [], 0
        return start, photons


class _SharedCores:
    """The network's CPU threads beside the refinement's thread: while a refinement is still
    running when the network has finished a batch, the network runs on one thread less than
    torch had (else its threads wait on each other behind the refinement's: 2 cores, 160x160
    frames, the no-VAR network 9.6 -> 10.4-10.9 frames/s); while none is (a VAR network is the
    slower part), on all of them. When the last run open closes, torch's number of threads is what
    it was before the first (runs in several threads share it)."""

    lock, users, threads = threading.Lock(), 0, 0

    def __init__(self, device: torch.device, refining: bool):
        self.on = device.type == "cpu" and refining
        if self.on:
            with _SharedCores.lock:
                if not _SharedCores.users:
                    _SharedCores.threads = torch.get_num_threads()
                _SharedCores.users += 1

    def after_batch(self, refining: Iterable[tuple[int, Future | None]]) -> None:
        if self.on and _SharedCores.threads > 1:
            running = any(refinement is not None and not refinement.done() for _, refinement in refining)
            torch.set_num_threads(_SharedCores.threads - running)

    def close(self) -> None:
        if self.on:
            with _SharedCores.lock:
                _SharedCores.users -= 1
                if not _SharedCores.users:
                    torch.set_num_threads(_SharedCores.threads)


def _halves(n_frames: int, batch_size: int) -> list[int]:
    """Where the two parts of a chunk of n_frames frames end, split at the batch boundary nearest
    its middle ([n_frames] where it holds one batch): the refinement judges per batch
    (_refine_batch), so the parts give what the whole would."""
    middle = batch_size * round(n_frames / batch_size / 2)
    return [middle, n_frames] if 0 < middle < n_frames else [n_frames]


def _refine_batch(found: pd.DataFrame, start: int, photons_THW: np.ndarray, camera: Camera, spots: SpotModel,
                  options: PredictOptions, network_sees_more: bool) -> pd.DataFrame:
    """refine_table of the detections `found` in the frames start, start + 1, ... (photons_THW;
    start a multiple of options.batch_size), judged per batch of frames as they were read;
    network_sees_more: the network saw context frames (refine_table)."""
    refined = refine_table(found.assign(frame=found["frame"] - start), photons_THW, camera, spots,
                           options.phantom_fdr, options.batch_size, network_sees_more)
    return refined.assign(frame=refined["frame"] + start)


def _finish(batch: tuple[int, Future | None], n: int, progress: Callable[..., None] | None, seen: int) -> int:
    """Wait for a batch's refinement (its error raised here), report its frames done (of n, `seen`
    through the network) and return them."""
    done, refinement = batch
    if refinement is not None:
        refinement.result()
    if progress is not None:
        progress(done, n, seen)
    return done


def run_bin_px(model: VAREmitterPredictor, options: PredictOptions, camera: Camera) -> int:
    """The binning of a run's frames in front of the network: options.bin_px, or where that is 0,
    what the 2-D PSF sigma of the run asks for against the PSF sigmas the model's card says it
    was trained on (predict.canonical; 1 for 3-D models and where either is unknown)."""
    if options.bin_px:
        return options.bin_px
    envelope = Envelope.from_card(model.card)
    if model.config.with_z or options.psf_sigma_nm is None or envelope is None:
        return 1
    return bin_factor(options.psf_sigma_nm / camera.pixel_size_nm, envelope.psf_sigma_px)


def refinement_spots(options: PredictOptions, config: ModelConfig, camera: Camera) -> SpotModel | None:
    """The PSF the refinement fits with: the astigmatic calibration of a 3-D model, the
    Gaussian of options.psf_sigma_nm in 2-D; None when the refinement is off."""
    if not options.refine:
        return None
    if config.with_z:
        return AstigmaticSpots(options.psf, camera.pixel_size_nm) if options.psf is not None else None
    return RoundSpots(options.psf_sigma_nm / camera.pixel_size_nm) if options.psf_sigma_nm is not None else None


def sigma_frames(frames_shape: tuple[int, ...]) -> int:
    """How many of the first of (T, H, W) frames the PSF sigma is estimated from: SIGMA_FRAMES,
    or more to make SIGMA_PIXELS."""
    return min(frames_shape[0], max(SIGMA_FRAMES, -(-SIGMA_PIXELS // (frames_shape[1] * frames_shape[2]))))


def estimate_psf_sigma_of_frames(model: VAREmitterPredictor, frames_adu, camera: Camera, options: PredictOptions,
                                 progress: Callable[..., None] | None = None) -> tuple[float | None, int, int]:
    """(PSF sigma in px or None, spots used, frames looked at) of the first sigma_frames of
    (T, H, W) ADU frames, leaving out frames with NaN or inf: fit.psf_sigma, beside the network's
    detections there (at the default threshold); progress as predict_frames'."""
    frames = read_here(frames_adu[:sigma_frames(frames_adu.shape)])
    looked_at = len(frames)
    frames = frames[np.isfinite(frames).all(axis=(1, 2))]  # a bad frame is named when the run reaches it
    if not len(frames):
        return None, 0, looked_at
    # the default threshold, so that the sigma (a setting of the run) does not follow the user's
    options = dataclasses.replace(options, refine=False, threshold=DEFAULT_THRESHOLD)
    table = predict_frames(model, frames, camera, options, progress=progress).table
    sigma_px, spots = estimate_sigma_px(frames_to_photons(frames, camera), table, camera, widest_trained_px(model))
    return sigma_px, spots, looked_at


def widest_trained_px(model: VAREmitterPredictor) -> float | None:
    """The widest PSF sigma (px) the model's card says it was trained on (None: it says none)."""
    envelope = Envelope.from_card(model.card)
    return None if envelope is None else envelope.psf_sigma_px[1]


@dataclasses.dataclass(frozen=True)
class SigmaNote:
    """What a run says of its PSF sigma: the text, and whether it is a caution (the refinement
    turned off, or spots narrower than any the model was trained on) rather than information."""
    text: str
    caution: bool


def with_psf_sigma(options: PredictOptions, model: VAREmitterPredictor, frames_adu, camera: Camera,
                   progress: Callable[..., None] | None = None,
                   in_widget: bool = False) -> tuple[PredictOptions, SigmaNote | None]:
    """For a whole run (the CLI's, a widget's): the options with the PSF sigma the refinement
    fits with, estimated once (so that every chunk and Dask worker uses the same) when the
    refinement is on and the sigma not given; and what to tell the user (None: nothing). With
    no spot to estimate it from, the refinement is turned off, and the note says so. progress:
    of the estimate's frames (sigma_frames), as predict_frames'; in_widget: the note names other
    models as the Predict widget lists them (else as the command line takes them)."""
    if not options.refine or model.config.with_z or options.psf_sigma_nm is not None:
        return options, None
    sigma_px, spots, looked_at = estimate_psf_sigma_of_frames(model, frames_adu, camera, options, progress)
    if sigma_px is None:
        return dataclasses.replace(options, refine=False), SigmaNote(
            f"no spot in {looked_at} frame(s) to estimate the PSF sigma from: positions stay the network's "
            "(give the PSF sigma to refine them)", caution=True)
    sigma_nm = round(sigma_px * camera.pixel_size_nm, 2)
    options = dataclasses.replace(options, psf_sigma_nm=sigma_nm)
    geometry, caution = _geometry_note(model, options, camera, sigma_px, in_widget)
    return options, SigmaNote(f"PSF sigma {sigma_nm:.1f} nm ({sigma_px:.2f} px), estimated from {spots} spots in "
                              f"{looked_at} frame(s)" + geometry, caution)


def _geometry_note(model: VAREmitterPredictor, options: PredictOptions, camera: Camera,
                   sigma_px: float, in_widget: bool = False) -> tuple[str, bool]:
    """What the PSF sigma means for the network ("" when nothing): the binning in front of it, or
    that the spots are narrower than any it was trained on (a caution: True)."""
    envelope = Envelope.from_card(model.card)
    if envelope is None:
        return "", False
    binned = run_bin_px(model, options, camera)
    low, high = envelope.psf_sigma_px
    if binned > 1:
        return (f"; frames binned {binned}x{binned} in front of the network, where spots are "
                f"{binned_sigma_px(sigma_px, binned):.2f} px wide (it was trained on {low:.2g}-{high:.2g} px)"), False
    if sigma_px < (1 - SIGMA_TOLERANCE) * low:
        others = "".join(f"try {name}, trained on {other.psf_sigma_px[0]:.2g}-{other.psf_sigma_px[1]:.2g} px, or "
                         for name, other in bundled_alternatives(options.weights, in_widget)
                         if sigma_px >= (1 - SIGMA_TOLERANCE) * other.psf_sigma_px[0])
        return (f"; spots are narrower than any the model was trained on ({low:.2g}-{high:.2g} px): it may miss "
                f"some, the brightest first; {others}{FINE_TUNE_HINT}"), True
    return "", False


def _listed(numbers: np.ndarray, most: int = 5) -> str:
    """"1, 2, 3" or "1, 2, 3, 4, 5 and 7 more"."""
    shown = ", ".join(str(int(v)) for v in numbers[:most])
    return shown + (f" and {len(numbers) - most} more" if len(numbers) > most else "")


def _tiles_per_pass(tiles_NFhw: torch.Tensor, batch_size: int) -> int:
    """batch_size, and on a CPU no more tiles than CPU_PIXELS_PER_PASS pixels of them."""
    if tiles_NFhw.device.type != "cpu":
        return batch_size
    return max(1, min(batch_size, CPU_PIXELS_PER_PASS // (tiles_NFhw.shape[-2] * tiles_NFhw.shape[-1])))


def _read_ahead(frames_adu, span: tuple[int, int], camera: Camera, batch_size: int, first_frame: int,
                device: torch.device, context_frames: int) -> Iterator[tuple[int, torch.Tensor, np.ndarray]]:
    """The frames frames_adu[span[0]:span[1]], batch_size at a time: (the batch's first frame counted
    from span[0], (b, F, H, W) photons on `device`: each frame and its context_frames on both sides
    (model.context, F = 1 + 2 context_frames), (b,) whether each frame holds one value everywhere).
    A background thread reads the next batch and converts it to photons (into pinned memory
    for a GPU) while the caller works on this one; a reading error is raised at its batch."""

    def load(start: int) -> tuple[torch.Tensor, np.ndarray]:
        stop = min(start + batch_size, span[1])
        first, last = context_reach(start, stop, len(frames_adu), context_frames)
        adu = np.asarray(frames_adu[first:last])
        photons = torch.from_numpy(with_context(frames_to_photons(adu, camera, first_frame + first), context_frames,
                                                start - first, stop - first))
        adu = adu[start - first:stop - first]
        constant_B = adu.min(axis=(1, 2)) == adu.max(axis=(1, 2))
        return (photons.pin_memory() if device.type == "cuda" else photons), constant_B

    starts = range(span[0], span[1], batch_size)
    with ThreadPoolExecutor(1, thread_name_prefix="read-ahead") as pool:
        pending = pool.submit(load, starts[0]) if len(starts) else None
        for i, start in enumerate(starts):
            photons, constant_B = pending.result()
            if i + 1 < len(starts):
                pending = pool.submit(load, starts[i + 1])
            yield start - span[0], photons.to(device, non_blocking=True), constant_B


def _generate(model: VAREmitterPredictor, tiles_NFhw: torch.Tensor, options: PredictOptions,
              generator: torch.Generator | None, calibration_1P: torch.Tensor | None = None):
    """One pass of model.generate over tiles (with the calibration vector of a conditioned
    model); float32 results ([(N, 1, h_s, w_s)] per scale, (N, K, H_o, W_o)); with samples > 1,
    means over generations sampled with `generator` (the head's detection logit is the logit of
    the mean probability)."""
    samples = options.samples
    runs = []
    for _ in range(samples):
        with torch.autocast(tiles_NFhw.device.type, dtype=torch.bfloat16, enabled=options.amp):
            probs, head = model.generate(
                tiles_NFhw, temperature=1.0 if samples > 1 else 0.0, generator=generator,
                prior_scale=options.prior_scale,
                calibration_BP=None if calibration_1P is None else calibration_1P.expand(len(tiles_NFhw), -1))
        runs.append(([p.float() for p in probs], head.float()))
    return runs[0] if samples == 1 else _mean_of_samples(runs)


def _mean_of_samples(runs):
    """[(per-scale maps, head output)] of sampled generations -> their mean."""
    probs = [torch.stack([r[0][si] for r in runs]).mean(0) for si in range(len(runs[0][0]))]
    head = torch.stack([r[1] for r in runs]).mean(0)
    detection = torch.stack([torch.sigmoid(r[1][:, LOGIT]) for r in runs]).mean(0)
    head[:, LOGIT] = torch.logit(detection, eps=1e-6)
    return probs, head
