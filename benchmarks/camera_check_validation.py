"""How the noise check of the camera values (io/camera_check.noise_ratio) was chosen: on our own
simulated stacks, the ratio R of the pixels' frame-to-frame variance to what the camera values
predict, with the values right and with each made wrong as users make them. R near 1 means right;
above NOISE_RATIO_HIGH the check warns.

Stacks: 64x64 px, 40 frames, blinking emitters (2,000 photons) at 0.1 / 1 / 4 /µm², background 2 /
10 / 50 / 200 photons/px flat and 10x structured; cameras: sCMOS (1.5 e⁻ read noise, 0.5 e⁻/ADU),
sCMOS with per-pixel maps (offset, variance with 0.5 % hot pixels, gain), the same pixels
recorded without maps (the user gives one baseline and read noise), EMCCD (gain 100, 10
e⁻/ADU, 50 e⁻ read noise). Wrong values: the baseline up or down by the background's level in ADU,
and by half of it; the gain in e⁻/ADU twice or half the true one. Per condition the smallest and
largest R over the stacks, and how many stacks it warns on at NOISE_RATIO_HIGH and at the
other thresholds of --highs. Seeds 12,001,700+ (validation).

Run: .venv/bin/python benchmarks/camera_check_validation.py [--frames 40] [--seed-base 12001700] [--highs 3 3.5 4]
Prints one row per camera and condition; asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import tempfile
from pathlib import Path

import numpy as np

from napari_var_emitter.io.camera import Camera
from napari_var_emitter.io.camera_check import NOISE_RATIO_HIGH, noise_ratio
from napari_var_emitter.simulate.camera_noise import add_uncalibrated_pixel_noise, write_scmos_maps
from napari_var_emitter.simulate.config import SimulationConfig
from napari_var_emitter.simulate.stack import simulate_stack

DENSITIES = (0.1, 1.0, 4.0)
BACKGROUNDS = (2.0, 10.0, 50.0, 200.0)


def cameras(folder: Path, rng: np.random.Generator) -> dict[str, Camera]:
    maps = write_scmos_maps(folder, (64, 64), rng)
    return {"sCMOS": Camera(baseline_adu=100.0, e_per_adu=0.5, read_noise_e=1.5),
            "sCMOS, pixel maps": Camera(baseline_adu=100.0, e_per_adu=0.5, read_noise_e=1.5, **maps),
            "sCMOS, pixels uncalibrated": Camera(baseline_adu=100.0, e_per_adu=0.5, read_noise_e=1.5),
            "EMCCD": Camera(baseline_adu=100.0, e_per_adu=10.0, em_gain=100.0, read_noise_e=50.0, type="EMCCD")}


def wrong_values(camera: Camera, background: float) -> dict[str, Camera]:
    """The camera as given by a user who got one value wrong: name -> camera."""
    level_adu = background * camera.qe * camera.em_gain / camera.e_per_adu
    out = {"right": camera}
    if camera.has_pixel_maps:
        return out
    for factor in (1.0, 0.5, -0.5, -1.0):
        out[f"baseline {factor:+g}x level"] = dataclasses.replace(camera, baseline_adu=camera.baseline_adu
                                                                  + factor * level_adu)
    for factor in (2.0, 0.5):
        out[f"gain x{factor:g}"] = dataclasses.replace(camera, e_per_adu=camera.e_per_adu * factor)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--seed-base", type=int, default=12_001_700)
    parser.add_argument("--highs", type=float, nargs="+", default=[3.0, 3.5, 4.0], help="thresholds to compare")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        found: dict[tuple[str, str], list[float]] = {}
        for name, camera in cameras(Path(folder), np.random.default_rng(args.seed_base)).items():
            conditions = itertools.product(DENSITIES, BACKGROUNDS, (1.0, 10.0))
            for k, (density, background, contrast) in enumerate(conditions):
                config = SimulationConfig(frame_size=(64, 64), n_frames=args.frames, density_per_um2=density,
                                          background_photons=background, background_variation=float(contrast > 1),
                                          background_contrast=contrast, camera=camera)
                rng = np.random.default_rng(args.seed_base + 1 + k)
                frames, _ = simulate_stack(config, rng)
                if name == "sCMOS, pixels uncalibrated":
                    frames = add_uncalibrated_pixel_noise(frames, camera, rng)
                for label, given in wrong_values(camera, background).items():
                    ratio = noise_ratio(given, frames)[0]
                    found.setdefault((name, label), []).append(ratio)
                    if label == "right" and ratio > NOISE_RATIO_HIGH:
                        print(f"  {name}: R {ratio:.2f} with the values right at {density:g} /µm², background "
                              f"{background:g} photons/px, contrast {contrast:g}", flush=True)
        highs = sorted({NOISE_RATIO_HIGH, *args.highs})
        columns = " | ".join(f"warned at R > {h:g}" for h in highs)
        print(f"| camera | values | R smallest | R largest | {columns} |")
        print("|---|---|---|---|" + "---|" * len(highs))
        for (name, label), ratios in found.items():
            ratios = np.asarray(ratios)
            warned = " | ".join(f"{int((ratios > h).sum())} of {len(ratios)}" for h in highs)
            print(f"| {name} | {label} | {ratios.min():.2f} | {ratios.max():.2f} | {warned} |")


if __name__ == "__main__":
    main()
