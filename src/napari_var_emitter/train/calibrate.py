"""Self-calibration: a user's acquisition conditions, estimated from the current model's
confident detections, turned into simulation ranges to fine-tune on, in the geometry the network
sees the stack in (frames binned in front of it where spots are wider than it was trained on:
predict.canonical)."""

from __future__ import annotations

from ..classical.localize import localize_stack
from ..errors import InputError
from ..fit.psf_sigma import estimate_sigma_px
from ..io.camera import Camera, frames_to_photons
from ..io.tiff import read_spread
from ..predict.frames import predict_frames, run_bin_px, widest_trained_px
from ..predict.options import PredictOptions
from .config import SimulationRanges

MIN_SPOTS = 20
BRIGHT_QUANTILE = 0.95  # the training photons reach this quantile of the stack's spots


def estimate_conditions(frames_adu, camera: Camera, model, max_frames: int = 50) -> dict:
    """From up to `max_frames` frames spread over a (T, H, W) ADU stack: the PSF sigma (nm) that
    best explains isolated spots (fit.psf_sigma); median photons and background (photons/px) of
    classical MLE fits with that sigma to every spot found (the model's confident spots alone are
    biased where it is unsure), and their BRIGHT_QUANTILE; the detection density (/µm² per frame);
    bin_px, the binning the model's network sees the stack with (predict.canonical)."""
    frames = read_spread(frames_adu, max_frames)
    table = predict_frames(model, frames, camera).table
    px = camera.pixel_size_nm
    sigma_px, spots = estimate_sigma_px(frames_to_photons(frames, camera), table, camera,
                                       widest_trained_px(model))  # as the refinement does
    if spots < MIN_SPOTS:
        raise InputError(f"only {spots} clear spots in {len(frames)} frames (need {MIN_SPOTS}): "
                         "use more frames, or fine-tune with trusted positions instead")
    sigma_nm = sigma_px * px
    fits = localize_stack(frames, camera, sigma_nm)  # every spot, not only those the model is sure of
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
