"""Camera model: expected photons -> noisy camera counts (ADU); synthetic sCMOS calibration maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io.camera import Camera


def expose(expected_photons: np.ndarray, camera: Camera, rng: np.random.Generator) -> np.ndarray:
    """Poisson shot noise on photons * qe, EM gain (gamma: excess noise factor 2), Gaussian
    read noise (e-, at the output), then e- -> ADU, baseline, rounding, clipping to uint16.
    With per-pixel maps the read noise, gain and offset are each pixel's own."""
    electrons = rng.poisson(np.asarray(expected_photons, dtype=np.float64) * camera.qe).astype(np.float64)
    if camera.em_gain > 1:
        electrons = rng.gamma(electrons, camera.em_gain)  # shape 0 gives 0
    if camera.has_pixel_maps:
        maps = camera.pixel_calibration()
        read_sd_e = (np.sqrt(maps.read_variance_e2_YX()) if maps.variance_adu2_YX is not None
                     else camera.read_noise_e)
        electrons += rng.normal(0.0, 1.0, electrons.shape) * read_sd_e
        adu = np.rint(electrons * maps.gain_adu_per_e + maps.offset_adu)
    else:
        electrons += rng.normal(0.0, camera.read_noise_e, electrons.shape)
        adu = np.rint(electrons / camera.e_per_adu + camera.baseline_adu)
    return np.clip(adu, 0, np.iinfo(np.uint16).max).astype(np.uint16)


SCMOS_OFFSET_ADU = 100.0  # mean per-pixel offset of the synthetic sCMOS maps


def scmos_pixel_maps(shape: tuple[int, int], rng: np.random.Generator,
                     hot_fraction: float = 0.005) -> dict[str, np.ndarray]:
    """Per-pixel sCMOS calibration like a real camera's: offset ~ 100 ± 2 ADU, gain 2.1 ± 0.1
    ADU/e⁻, read-noise variance log-normal around 5.7 ADU² with `hot_fraction` of the pixels at
    200-2,000 ADU²; Camera's map names -> (H, W) arrays."""
    variance = rng.lognormal(np.log(5.7), 0.4, shape)
    hot = rng.random(shape) < hot_fraction
    variance[hot] = rng.uniform(200.0, 2000.0, hot.sum())
    return {"offset_map": rng.normal(SCMOS_OFFSET_ADU, 2.0, shape), "variance_map": variance,
            "gain_map": rng.normal(2.1, 0.1, shape)}


def write_scmos_maps(folder: Path, shape: tuple[int, int], rng: np.random.Generator,
                     hot_fraction: float = 0.005) -> dict[str, str]:
    """scmos_pixel_maps as .npy files in `folder`; returns Camera's map fields."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, values in scmos_pixel_maps(shape, rng, hot_fraction).items():
        np.save(folder / f"{name}.npy", values)
        paths[name] = str(folder / f"{name}.npy")
    return paths


def add_uncalibrated_pixel_noise(adu_TYX: np.ndarray, camera: Camera, rng: np.random.Generator,
                                 hot_fraction: float = 0.005) -> np.ndarray:
    """Frames of an sCMOS simulated with one offset and read noise for all pixels, given each
    pixel's own offset and read-noise variance (scmos_pixel_maps, hot pixels included) as a user
    without calibration maps would record them: the same maps for every frame (uint16 ADU)."""
    maps = scmos_pixel_maps(adu_TYX.shape[1:], rng, hot_fraction)
    uniform_variance_adu2 = (camera.read_noise_e / camera.e_per_adu) ** 2
    extra_sd_adu = np.sqrt(np.maximum(maps["variance_map"] - uniform_variance_adu2, 0.0))
    adu = adu_TYX + (maps["offset_map"] - SCMOS_OFFSET_ADU) + rng.normal(size=adu_TYX.shape) * extra_sd_adu
    return np.clip(np.rint(adu), 0, np.iinfo(np.uint16).max).astype(np.uint16)
