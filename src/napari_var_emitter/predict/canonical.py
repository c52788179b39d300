"""The model's own geometry: a PSF wider than the model was trained on is brought into its range by
binning camera pixels b x b in front of the network (summing photons keeps their Poisson
statistics exact); the refinement then fits on the camera's own pixels. A narrower PSF is left
as it is (resampling up would make the noise look like nothing the model saw)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MAX_BIN = 4


def binned_sigma_px(sigma_px: float, bin_px: int) -> float:
    """A Gaussian PSF of sigma_px camera pixels, in b x b binned pixels: summing pixels only
    integrates the same Gaussian over larger ones (as the simulator and the fits model it)."""
    return float(sigma_px / bin_px)


def bin_factor(sigma_px: float | None, trained_sigma_px: tuple[float, float] | None) -> int:
    """The binning (1 to MAX_BIN) whose binned PSF sigma lies closest, in its logarithm, to the
    middle of the sigmas the model was trained on; 1 when the PSF is within or below that range,
    or either is unknown."""
    if sigma_px is None or trained_sigma_px is None or sigma_px <= trained_sigma_px[1]:
        return 1
    middle = np.sqrt(trained_sigma_px[0] * trained_sigma_px[1])
    return int(min(range(1, MAX_BIN + 1), key=lambda b: abs(np.log(binned_sigma_px(sigma_px, b) / middle))))


def bin_photons(photons_B1HW: torch.Tensor, bin_px: int) -> torch.Tensor:
    """(B, 1, ceil(H / b), ceil(W / b)) photons summed over b x b pixels; a frame whose sides are
    not multiples of b is first extended by repeating its last row and column."""
    if bin_px == 1:
        return photons_B1HW
    height, width = photons_B1HW.shape[-2:]
    padded = F.pad(photons_B1HW, (0, -width % bin_px, 0, -height % bin_px), mode="replicate")
    return F.avg_pool2d(padded, bin_px) * bin_px ** 2
