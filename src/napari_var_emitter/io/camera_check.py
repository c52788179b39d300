"""Camera values checked against the frames they convert, before any work: values that no real
acquisition fits are an InputError, doubtful ones a warning, each naming the value and what it
likely should be. Besides the levels, the noise: a pixel's counts vary from frame to frame by the
shot noise of its level plus the read noise, so a baseline or gain that is wrong shows as noise the
camera values do not predict (a baseline 500 ADU too high on NAIRR-SMLM's low-density stack
leaves the median pixel at 12 photons, with 3.7 times the frame-to-frame variance that 12 photons
and its read noise of 17 e⁻ give)."""

from __future__ import annotations

import numpy as np
import scipy.stats

from ..errors import InputError
from .camera import Camera
from .tiff import read_here

# a typical SMLM background, photons per pixel per frame: what a suggested gain aims at
TYPICAL_BACKGROUND = (10.0, 200.0)
# the remedy, in the words of the widget's field and of the command line's help
CHECK_GAIN = "check the gain [e⁻/ADU] (photo-electrons per ADU; a camera sheet's ADU per e⁻ is its inverse)"
# the pixels' frame-to-frame variance over what the camera values predict (noise_ratio) above this
# gets a warning. Chosen on our own simulated stacks (benchmarks/camera_check_validation.py, seeds
# 12,001,700+): with the values right at most 3.07 (at 4 /µm², where blinking emitters touch most
# pixels; 2.32 on EMCCD); a baseline too high by the background's level warned on 51 of 72 stacks
# (missed: 2 photons/px, and 10 under a 10x structured background at 0.1-1 /µm² on sCMOS), twice
# the gain on 24 of 72. Too little noise is not warned
# of: a baseline too low showed on few stacks, and real sCMOS frames with their own calibration
# maps read 0.37
NOISE_RATIO_HIGH = 3.5
RUN_FRAMES = 4  # consecutive frames read at each of the first, middle and last for the noise
WINDOW_PX = 512  # ... on at most the central this many pixels square
MIN_DIFFERENCES = 1000  # fewer pixel differences give too noisy a quantile (3 % false warnings at 2 x 8 x 8)
# the noise's spread is read off this quantile of the absolute differences: the lower ones, which
# emitters switching on or off between frames leave alone even where they touch most pixels
SPREAD_QUANTILE = 0.1


def check_camera_on_frames(camera: Camera, frames_adu) -> list[str]:
    """Warnings about `camera` on the first, middle and last of (T, Y, X) ADU frames (numpy or
    dask); InputError for a baseline (or offset map) above nearly every pixel and for a gain that
    puts the median pixel at 100,000 photons or more. Frames with NaN or inf are left to the
    conversion (io.camera.frames_to_photons), which names them."""
    n = len(frames_adu)
    picks = sorted({0, n // 2, n - 1})
    adu = np.asarray(frames_adu[picks], dtype=np.float32)
    if not np.isfinite(adu).all():
        return []
    messages = []
    constant = [i for i, frame in zip(picks, adu) if frame.min() == frame.max()]
    if constant:
        where = ", ".join(str(i + 1) for i in constant)
        messages.append(f"frame(s) {where} (1-based) hold one value everywhere ({adu[picks.index(constant[0])].flat[0]:g}"
                        " ADU): an empty or failed acquisition? Such frames give no localisations")
    live = adu[[k for k, i in enumerate(picks) if i not in constant]]
    if not len(live):
        return messages
    photons = camera.adu_to_photons(live)
    offset = "the offset map" if camera.offset_map else f"the baseline {camera.baseline_adu:g} ADU"
    below = float(np.mean(photons <= 0))
    if below >= 0.8:
        darkest = float(np.percentile(live, 1))
        share = "every pixel" if below >= 0.995 else f"{below:.0%} of the pixels"
        text = (f"{offset} is at or above {share} (median pixel {np.median(live):.0f} ADU): "
                f"the camera's offset lies below the darkest pixels (the darkest 1 % read {darkest:.0f} ADU), often "
                "well below them: check the camera's baseline (its offset in ADU: the camera's data sheet gives it, "
                "or the mean of frames taken with the shutter closed)")
        if below >= 0.99:
            raise InputError(text)
        messages.append(text)
    elif (noise := _noise_message(camera, frames_adu)) is not None:
        messages.append(noise)
    median, bright = float(np.median(photons)), float(np.percentile(photons, 99.9))
    low, high = (camera.e_per_adu * t / max(median, 1e-12) for t in TYPICAL_BACKGROUND)
    suggestion = (f"a typical background of {TYPICAL_BACKGROUND[0]:g}-{TYPICAL_BACKGROUND[1]:g} photons per pixel "
                  f"would mean about {low:.3g}-{high:.3g} e⁻/ADU")
    if median >= 1e5:
        raise InputError(f"the gain {camera.e_per_adu:g} e⁻/ADU (EM gain {camera.em_gain:g}, QE {camera.qe:g}) "
                         f"puts the median pixel at {median:,.0f} photons: {suggestion}; {CHECK_GAIN}")
    if 0 < median and bright < 5:
        messages.append(f"the gain {camera.e_per_adu:g} e⁻/ADU (EM gain {camera.em_gain:g}) puts even the brightest "
                        f"pixels at {bright:.2g} photons: {suggestion}; {CHECK_GAIN} and the EM gain")
    return messages


def noise_ratio(camera: Camera, frames_adu) -> tuple[float, float] | None:
    """How the frame-to-frame noise of (T, Y, X) ADU frames (numpy or dask) compares with what
    `camera` predicts, over runs of RUN_FRAMES consecutive frames at the start, middle and end
    (the central WINDOW_PX x WINDOW_PX pixels): (R, the median pixel in photons). R is the robust
    variance (_robust_variance) of the differences of consecutive frames, each less its frame's
    median difference (a whole frame brighter than the one before: flicker, a background fading)
    and divided by the standard deviation the camera values predict for it: shot noise at the
    pixel's mean over its run (EM excess noise included), the read noise (the variance map's where
    given) and the ADU's rounding; 1 where the values are right. The counts are dithered by a
    uniform ±0.5 ADU (its variance predicted too), so that a quantile of whole-number differences
    reads a spread finer than one ADU. Frames of one value everywhere are left out. None where
    fewer than MIN_DIFFERENCES pixel differences remain."""
    n = len(frames_adu)
    top, left = (max((size - WINDOW_PX) // 2, 0) for size in frames_adu.shape[-2:])
    rows, cols = slice(top, top + WINDOW_PX), slice(left, left + WINDOW_PX)
    rng = np.random.default_rng(0)
    per_photon = camera.em_gain * camera.qe  # electrons at the output per photon
    if camera.variance_map is not None:
        read_variance = camera.pixel_calibration().read_variance_e2_YX()[rows, cols] / per_photon ** 2
    else:
        read_variance = np.float32(camera.read_noise_e ** 2 / per_photon ** 2)
    ratios, levels = [], []
    for start in sorted({0, max(n // 2 - RUN_FRAMES // 2, 0), max(n - RUN_FRAMES, 0)}):
        adu_TYX = read_here(frames_adu[start:start + RUN_FRAMES]).astype(np.float32)
        adu_TYX = adu_TYX[[frame.min() < frame.max() for frame in adu_TYX]]  # not the frames of one value
        if len(adu_TYX) < 2 or not np.isfinite(adu_TYX).all():
            continue
        whole = bool(np.all(adu_TYX == np.round(adu_TYX)))
        # photons per ADU, per pixel (through the gain map where given)
        adu_step_YX = (camera.adu_to_photons(adu_TYX[0] + 1) - camera.adu_to_photons(adu_TYX[0]))[rows, cols]
        dither = rng.random(adu_TYX.shape, dtype=np.float32) - np.float32(0.5)
        photons_TYX = camera.adu_to_photons(adu_TYX + dither)[:, rows, cols]
        shot_YX = camera.excess_noise_factor * np.maximum(photons_TYX.mean(0), 0) / camera.qe
        rounding_YX = adu_step_YX ** 2 * ((1 / 12 if whole else 0.0) + 1 / 12)
        step_TYX = np.diff(photons_TYX, axis=0)
        step_TYX -= np.median(step_TYX.reshape(len(step_TYX), -1), axis=1)[:, None, None]
        ratios.append((step_TYX / np.sqrt(np.maximum(2 * (shot_YX + read_variance + rounding_YX), 1e-12))).ravel())
        levels.append(photons_TYX.ravel())
    if sum(len(r) for r in ratios) < MIN_DIFFERENCES:
        return None
    return _robust_variance(np.concatenate(ratios)), float(np.median(np.concatenate(levels)))


def _robust_variance(values: np.ndarray) -> float:
    """The variance of the Gaussian whose absolute deviations from the median have the same
    SPREAD_QUANTILE as `values`'."""
    spread = np.quantile(np.abs(values - np.median(values)), SPREAD_QUANTILE)
    return float((spread / scipy.stats.norm.ppf(0.5 + SPREAD_QUANTILE / 2)) ** 2)


def _noise_message(camera: Camera, frames_adu) -> str | None:
    """A warning where the pixels vary more than `camera` predicts (noise_ratio above NOISE_RATIO_HIGH)."""
    measured = noise_ratio(camera, frames_adu)
    if measured is None or measured[0] <= NOISE_RATIO_HIGH:
        return None
    offset = "the offset map" if camera.offset_map else f"the baseline {camera.baseline_adu:g} ADU"
    gain = ("the gain map's ADU per e⁻ too small" if camera.gain_map
            else f"the gain {camera.e_per_adu:g} e⁻/ADU too large")
    em_gain = f", or the EM gain {camera.em_gain:g} too small" if camera.type == "EMCCD" else ""
    return (f"the pixels' frame-to-frame variance is {measured[0]:.2g} times what the camera values predict (shot "
            f"noise at their level, {measured[1]:.3g} photons per pixel as converted, and the read noise): {offset} "
            f"is likely too high, or {gain}{em_gain}. Check the camera's baseline (its offset in ADU) and read "
            f"noise; {CHECK_GAIN}")
