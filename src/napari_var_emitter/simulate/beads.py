"""Bead z-stacks for PSF calibration: sub-diffraction beads imaged slice by slice while the
focus steps through them (docs/3d.md)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..io.camera import Camera
from ..psf import PSF, render_spots
from .camera_noise import expose


def slice_z_nm(n_slices: int, z_step_nm: float, z_start_nm: float | None = None) -> np.ndarray:
    """z (nm) that slice k images: z_start + k·z_step, or centred on focus,
    (k − (n − 1)/2)·z_step, without z_start."""
    k = np.arange(n_slices, dtype=np.float64)
    return (k - (n_slices - 1) / 2) * z_step_nm if z_start_nm is None else z_start_nm + k * z_step_nm


def simulate_bead_stack(psf: PSF, camera: Camera, rng: np.random.Generator, n_beads: int = 8,
                        frame_size: tuple[int, int] = (96, 96), n_slices: int = 71, z_step_nm: float = 20.0,
                        photons: float = 20000.0, background: float = 50.0,
                        focus_offset_nm: float = 0.0) -> tuple[np.ndarray, pd.DataFrame]:
    """(n_slices, H, W) uint16 ADU stack of `n_beads` beads at least 3 µm apart and 1.5 µm from the
    edges, and their truth (x_nm, y_nm). Slice k images the beads at slice_z_nm(k) +
    focus_offset_nm (a stack not centred on the focus); photons per bead per slice, background in
    photons per pixel."""
    px = camera.pixel_size_nm
    height, width = frame_size
    positions = []
    while len(positions) < n_beads:
        for _ in range(10000):
            xy = rng.uniform([1500.0, 1500.0], [width * px - 1500.0, height * px - 1500.0])
            if all(np.hypot(*(xy - p)) >= 3000.0 for p in positions):
                positions.append(xy)
                break
        else:
            raise ValueError(f"{n_beads} beads 3 µm apart do not fit in {height} x {width} px")
    x_nm, y_nm = np.array(positions).T
    z = slice_z_nm(n_slices, z_step_nm) + focus_offset_nm
    frame = np.repeat(np.arange(n_slices), n_beads)
    sigma_x, sigma_y = psf.sigmas_nm(np.repeat(z, n_beads))
    expected = render_spots((n_slices, height, width), frame, np.tile(x_nm, n_slices) / px,
                            np.tile(y_nm, n_slices) / px, sigma_x / px, sigma_y / px,
                            np.full(frame.size, photons)) + background
    return expose(expected, camera, rng), pd.DataFrame({"x_nm": x_nm, "y_nm": y_nm})
