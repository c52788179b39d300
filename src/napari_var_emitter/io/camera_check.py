"""Camera values checked against the frames they convert, before any work: values that no real
acquisition fits are an InputError, doubtful ones a warning, each naming the value and what it
likely should be."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .camera import Camera

# a typical SMLM background, photons per pixel per frame: what a suggested gain aims at
TYPICAL_BACKGROUND = (10.0, 200.0)
# the remedy, in the words of the widget's field and of the command line's help
CHECK_GAIN = "check the gain [e⁻/ADU] (photo-electrons per ADU; a camera sheet's ADU per e⁻ is its inverse)"


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
                f"the camera's offset is likely about {darkest:.0f} ADU or lower (the darkest 1 % of the pixels); "
                "check the camera's baseline (its offset in ADU)")
        if below >= 0.99:
            raise InputError(text)
        messages.append(text)
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
