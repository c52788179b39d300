"""Self-calibration: a user's acquisition conditions, estimated from the current model's
confident detections, turned into simulation ranges to fine-tune on, in the geometry the network
sees the stack in (frames binned in front of it where spots are wider than it was trained on:
predict.canonical)."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from ..classical.localize import localize_stack
from ..errors import InputError
from ..fit.psf_sigma import estimate_sigma_px
from ..io.camera import Camera, frames_to_photons
from ..io.tiff import read_spread
from ..predict.frames import predict_frames, run_bin_px, widest_trained_px
from ..predict.options import PredictOptions
from .config import SimulationRanges
from .data import LabelledSource, SimulatedSource

MIN_SPOTS = 20
CALIBRATION_FRAMES = 50  # the conditions are estimated from at most this many frames
TILE_PX = 64  # fine-tuning tiles, in the network's pixels
BRIGHT_QUANTILE = 0.95  # the training photons reach this quantile of the stack's spots


def estimate_conditions(frames_adu, camera: Camera, model, max_frames: int = CALIBRATION_FRAMES,
                        progress: Callable[[int, int], None] | None = None) -> dict:
    """From up to `max_frames` frames spread over a (T, H, W) ADU stack: the PSF sigma (nm) that
    best explains isolated spots (fit.psf_sigma); median photons and background (photons/px) of
    classical MLE fits with that sigma to every spot found (the model's confident spots alone are
    biased where it is unsure), and their BRIGHT_QUANTILE; the detection density (/µm² per frame);
    bin_px, the binning the model's network sees the stack with (predict.canonical).
    progress(done, total): the frames through the network, then those fitted (total: twice the
    frames), after each batch and each frame fitted; where it raises, the estimate stops."""
    frames = read_spread(frames_adu, max_frames)
    n = len(frames)
    through_network = None if progress is None else lambda done, _n, _seen=None: progress(done, 2 * n)
    table = predict_frames(model, frames, camera, progress=through_network).table
    px = camera.pixel_size_nm
    sigma_px, spots = estimate_sigma_px(frames_to_photons(frames, camera), table, camera,
                                       widest_trained_px(model))  # as the refinement does
    if spots < MIN_SPOTS:
        raise InputError(f"only {spots} clear spots in {len(frames)} frames (need {MIN_SPOTS}): "
                         "use more frames, or fine-tune with trusted positions instead")
    sigma_nm = sigma_px * px
    fits = []  # every spot, not only those the model is sure of
    for t in range(n):
        fits.append(localize_stack(frames[t:t + 1], camera, sigma_nm, first_frame=t))
        if progress is not None:
            progress(n + t + 1, 2 * n)
    fits = pd.concat(fits, ignore_index=True)
    field_um2 = frames.shape[1] * frames.shape[2] * (px / 1000) ** 2
    bin_px = run_bin_px(model, PredictOptions(psf_sigma_nm=sigma_nm), camera)
    return {"psf_sigma_nm": sigma_nm, "bin_px": bin_px, "photons": float(fits["photons"].median()),
            "photons_bright": float(fits["photons"].quantile(BRIGHT_QUANTILE)),
            "background_photons": float(fits["background"].median()),
            "density_per_um2": len(table) / (len(frames) * field_um2), "spots": spots, "frames": len(frames)}


def ranges_for(conditions: dict, camera: Camera) -> SimulationRanges:
    """Training ranges around estimated conditions, in the network's pixels: with frames binned
    b x b in front of it (conditions' bin_px), a camera of b-times larger pixels, b² times the
    background per pixel and b times the read noise (the variances of b² pixels add). Photons reach
    well above the median of detections, which blinks that start or end mid-frame pull down, and
    up to the stack's bright spots (a model misses spots brighter than any it saw; the Predict
    widget warns of them)."""
    sigma, photons = conditions["psf_sigma_nm"], conditions["photons"]
    brightest = max(1.8 * photons, conditions.get("photons_bright", 0.0))
    background, density = conditions["background_photons"], conditions["density_per_um2"]
    bin_px = conditions.get("bin_px", 1)
    binned_background = background * bin_px ** 2
    read_noise = camera.typical_read_noise_e * bin_px
    return SimulationRanges(pixel_size_nm=camera.pixel_size_nm * bin_px, psf_sigma_nm=(0.9 * sigma, 1.1 * sigma),
                            photons_mean=(0.6 * photons, brightest),
                            background_photons=(0.7 * binned_background, 1.3 * binned_background),
                            density_per_um2=(0.5 * density, 2.0 * density),
                            emccd_fraction=1.0 if camera.em_gain > 1 else 0.0,
                            scmos_read_noise_e=(read_noise, read_noise))


def self_calibrated_source(frames_adu, camera: Camera, model,
                           progress=None) -> tuple[SimulatedSource, dict, SimulationRanges]:
    """(batch source, conditions, the ranges the card states) of a self-calibrated fine-tune on
    (T, H, W) ADU frames: simulations in ranges around the conditions estimated from them
    (progress: estimate_conditions')."""
    conditions = estimate_conditions(frames_adu, camera, model, progress=progress)
    ranges = ranges_for(conditions, camera)
    return SimulatedSource(ranges, model.config, TILE_PX, seed=0), conditions, ranges


def trusted_positions_source(frames_adu, labels, camera: Camera, model,
                             progress=None) -> tuple[LabelledSource, dict, SimulationRanges | None]:
    """(batch source, conditions, the ranges the card states) of a fine-tune on (T, H, W) ADU frames
    and their trusted emitters (frame 0-based, x_nm, y_nm, photons): tiles of the frames, binned as
    the model bins them (less where frames are too small for TILE_PX binned tiles), the card stating
    the conditions estimated from them (None, and no binning, where they cannot be estimated;
    progress: estimate_conditions')."""
    conditions = {"labelled emitters": len(labels)}
    try:
        conditions.update(estimate_conditions(frames_adu, camera, model, progress=progress))
    except InputError:
        return LabelledSource([(frames_adu, labels, camera)], model.config, TILE_PX, seed=0), conditions, None
    bin_px = conditions["bin_px"]
    while bin_px > 1 and min(frames_adu.shape[1:]) < TILE_PX * bin_px:
        bin_px -= 1
    conditions["bin_px"] = bin_px
    source = LabelledSource([(frames_adu, labels, camera)], model.config, TILE_PX, seed=0, bin_px=bin_px)
    return source, conditions, ranges_for(conditions, camera)
