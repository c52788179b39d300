"""One simulated SMLM stack: blinking fluorophores on a structure, imaged by a camera."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ..io.emitters_h5 import GroundTruth
from ..psf import render_spots
from .background import background_map
from .camera_noise import expose
from .config import SimulationConfig
from .structures import blinking_fluorophores

_FRAMES_PER_CHUNK = 64


def simulate_stack(config: SimulationConfig, rng: np.random.Generator) -> tuple[np.ndarray, GroundTruth]:
    """Simulate `config.n_frames` frames. Returns (frames (T, H, W) uint16 ADU, ground truth)."""
    frames, truth, _ = simulate_stack_and_background(config, rng)
    return frames, truth


def simulate_stack_and_background(config: SimulationConfig, rng: np.random.Generator):
    """As simulate_stack, also returning the background (H, W) in photons/px (training's target)."""
    height, width = config.frame_size
    px = config.camera.pixel_size_nm
    records, x_nm, y_nm = blinking_fluorophores(config, rng)
    n_fluorophores = len(x_nm)
    if config.psf.astigmatism:
        z_nm = rng.uniform(*config.psf.z_range_nm, n_fluorophores)
    else:
        z_nm = np.zeros(n_fluorophores)
    brightness = fluorophore_brightness(config, n_fluorophores, rng)
    background = background_map((height, width), config.background_photons, config.background_variation,
                                config.background_scale_nm / px, rng, config.background_contrast, px)
    fid = records["id"].to_numpy()
    emitters = pd.DataFrame({
        "frame": records["frame"].to_numpy(),
        "x_nm": x_nm[fid],
        "y_nm": y_nm[fid],
        "z_nm": z_nm[fid],
        "photons": brightness[fid] * records["on_fraction"].to_numpy(),
        "id": fid,
    }).sort_values(["frame", "id"], ignore_index=True)
    emitters["background"] = background[(emitters["y_nm"] // px).astype(int),
                                        (emitters["x_nm"] // px).astype(int)]
    frames = np.empty((config.n_frames, height, width), dtype=np.uint16)
    for start in range(0, config.n_frames, _FRAMES_PER_CHUNK):
        stop = min(start + _FRAMES_PER_CHUNK, config.n_frames)
        frames[start:stop] = expose(_expected_photons(config, emitters, background, start, stop),
                                    config.camera, rng)
    truth = GroundTruth(emitters=emitters, camera=config.camera, psf=config.psf.to_dict(),
                        frame_shape=(height, width), n_frames=config.n_frames)
    return frames, truth, background


def simulate_independent_frames(config: SimulationConfig, rng: np.random.Generator):
    """As simulate_stack_and_background, with every frame simulated on its own (other
    fluorophores, and on a structured background another pattern, in each: as in challenge data
    whose frames are drawn apart): (frames (T, H, W) ADU, ground truth, backgrounds (T, H, W)
    photons/px)."""
    one = dataclasses.replace(config, n_frames=1)
    stacks = [simulate_stack_and_background(one, rng) for _ in range(config.n_frames)]
    emitters = pd.concat([truth.emitters.assign(frame=t) for t, (_, truth, _) in enumerate(stacks)],
                         ignore_index=True)
    truth = dataclasses.replace(stacks[0][1], emitters=emitters, n_frames=config.n_frames)
    return (np.concatenate([frames for frames, _, _ in stacks]), truth,
            np.stack([background for _, _, background in stacks]))


def fluorophore_brightness(config: SimulationConfig, n: int, rng: np.random.Generator) -> np.ndarray:
    """Photons per fully-on frame per fluorophore: gamma with the configured mean and CV."""
    if config.photons_cv == 0:
        return np.full(n, config.photons_mean)
    shape = 1.0 / config.photons_cv**2
    return rng.gamma(shape, config.photons_mean / shape, n)


def _expected_photons(config: SimulationConfig, emitters: pd.DataFrame, background: np.ndarray,
                      start: int, stop: int) -> np.ndarray:
    """Noise-free photons per pixel for frames [start, stop): background + PSFs."""
    px = config.camera.pixel_size_nm
    rows = emitters[(emitters["frame"] >= start) & (emitters["frame"] < stop)]
    psf = config.psf
    sigma_x, sigma_y = psf.sigmas_nm(rows["z_nm"].to_numpy())
    args = ((stop - start, *config.frame_size), rows["frame"].to_numpy() - start,
            rows["x_nm"].to_numpy() / px, rows["y_nm"].to_numpy() / px)
    photons = rows["photons"].to_numpy()
    spots = render_spots(*args, sigma_x / px, sigma_y / px, photons * (1 - psf.halo_fraction))
    if psf.halo_fraction:
        width = psf.halo_width / px
        spots += render_spots(*args, sigma_x * width, sigma_y * width, photons * psf.halo_fraction)
    return spots + background
