"""Camera model: expected photons -> noisy camera counts (ADU)."""

from __future__ import annotations

import numpy as np

from ..io.camera import Camera


def expose(expected_photons: np.ndarray, camera: Camera, rng: np.random.Generator) -> np.ndarray:
    """Poisson shot noise on photons * qe, EM gain (gamma: excess noise factor 2), Gaussian
    read noise (e-, at the output), then e- -> ADU, baseline, rounding, clipping to uint16."""
    electrons = rng.poisson(np.asarray(expected_photons, dtype=np.float64) * camera.qe).astype(np.float64)
    if camera.em_gain > 1:
        electrons = rng.gamma(electrons, camera.em_gain)  # shape 0 gives 0
    electrons += rng.normal(0.0, camera.read_noise_e, electrons.shape)
    adu = np.rint(electrons / camera.e_per_adu + camera.baseline_adu)
    return np.clip(adu, 0, np.iinfo(np.uint16).max).astype(np.uint16)
