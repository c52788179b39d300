"""Sample data: a small simulated SMLM stack with its ground truth; an astigmatic 3-D stack with
its truth and PSF calibration; and an astigmatic bead z-stack to calibrate on."""

from __future__ import annotations

import numpy as np

from ..io.camera import Camera
from ..psf import DefocusCurve, astigmatic_psf
from ..simulate.beads import simulate_bead_stack
from ..simulate.config import SimulationConfig, StructureConfig
from ..simulate.stack import simulate_stack
from .layers import MARKER_PX, contrast_limits, image_placement, nm_points_layer

CAMERA = Camera(pixel_size_nm=100.0, baseline_adu=100.0, e_per_adu=0.5, read_noise_e=1.5)
SAMPLE = SimulationConfig(frame_size=(96, 96), n_frames=20, density_per_um2=0.6, photons_mean=3000.0,
                          background_photons=40.0, structure=StructureConfig(kind="filaments", n_filaments=4),
                          camera=CAMERA)
SAMPLE_PSF = astigmatic_psf(DefocusCurve(135.0, -220.0, 300.0, 0.03, 0.02),
                            DefocusCurve(130.0, 220.0, 300.0, -0.02, 0.02), (-450.0, 450.0))
SAMPLE_3D = SimulationConfig(frame_size=(96, 96), n_frames=40, density_per_um2=0.15, photons_mean=3000.0,
                             background_photons=40.0, psf=SAMPLE_PSF, camera=CAMERA)
BEAD_Z_STEP_NM = 20.0


def simulated_stack() -> list[tuple]:
    """20 frames of 96x96 (100 nm pixels, sCMOS, 0.6 emitters/µm² on four filaments, 3,000
    photons, background 40 photons/px) as ADU, and the true emitters as Points (world nm)."""
    return _stack_and_truth(SAMPLE, "simulated SMLM stack", "ground truth", 2024, {})


def astigmatic_stack() -> list[tuple]:
    """40 astigmatic frames of 96x96 (camera as `simulated_stack`, 0.15 emitters/µm² at z from
    −450 to 450 nm) with the true emitters (coloured by z); the image's metadata holds the PSF
    calibration it was made with, which the 3-D widget picks up."""
    return _stack_and_truth(SAMPLE_3D, "astigmatic 3-D stack", "3-D ground truth", 2025, {"psf": SAMPLE_PSF.to_dict()})


def bead_stack() -> list[tuple]:
    """A z-stack of 6 beads through the same astigmatic PSF: 61 slices of 128x128, 20 nm apart,
    centred on focus (20,000 photons per bead per slice, background 50 photons/px)."""
    frames, _ = simulate_bead_stack(SAMPLE_PSF, CAMERA, np.random.default_rng(5), n_beads=6, frame_size=(128, 128),
                                    n_slices=61, z_step_nm=BEAD_Z_STEP_NM)
    metadata = {"camera": CAMERA.to_dict(), "z_step_nm": BEAD_Z_STEP_NM}
    return [(frames, {"name": "astigmatic bead z-stack", "metadata": metadata,
                      "contrast_limits": contrast_limits(frames), **image_placement(CAMERA.pixel_size_nm)}, "image")]


def _stack_and_truth(config: SimulationConfig, name: str, truth_name: str, seed: int, metadata: dict) -> list[tuple]:
    frames, truth = simulate_stack(config, np.random.default_rng(seed))
    px = truth.camera.pixel_size_nm
    image = (frames, {"name": name, "metadata": {"camera": truth.camera.to_dict(), **metadata},
                      "contrast_limits": contrast_limits(frames), **image_placement(px)}, "image")
    columns = ["frame", "x_nm", "y_nm", *(["z_nm"] if config.psf.astigmatism else []), "photons"]
    return [image, nm_points_layer(truth.emitters[columns], truth_name, "truth", MARKER_PX * px, source=name)]
