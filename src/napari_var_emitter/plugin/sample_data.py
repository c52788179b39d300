"""Sample data: a small simulated SMLM stack with its ground truth."""

from __future__ import annotations

import numpy as np

from ..io.camera import Camera
from ..simulate.config import SimulationConfig, StructureConfig
from ..simulate.stack import simulate_stack
from .layers import MARKER_PX, contrast_limits, image_placement, nm_points_layer

SAMPLE = SimulationConfig(frame_size=(96, 96), n_frames=20, density_per_um2=0.6, photons_mean=3000.0,
                          background_photons=40.0, structure=StructureConfig(kind="filaments", n_filaments=4),
                          camera=Camera(pixel_size_nm=100.0, baseline_adu=100.0, e_per_adu=0.5, read_noise_e=1.5))


def simulated_stack() -> list[tuple]:
    """20 frames of 96x96 (100 nm pixels, sCMOS, 0.6 emitters/µm² on four filaments, 3,000
    photons, background 40 photons/px) as ADU, and the true emitters as Points (world nm)."""
    frames, truth = simulate_stack(SAMPLE, np.random.default_rng(2024))
    px = truth.camera.pixel_size_nm
    image = (frames, {"name": "simulated SMLM stack", "metadata": {"camera": truth.camera.to_dict()},
                      "contrast_limits": contrast_limits(frames),
                      **image_placement(px)}, "image")
    table = truth.emitters[["frame", "x_nm", "y_nm", "photons"]]
    return [image, nm_points_layer(table, "ground truth", "truth", MARKER_PX * px)]
