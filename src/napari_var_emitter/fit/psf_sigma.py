"""The PSF sigma of a 2-D run, estimated from its first frames before the refinement fits with it.

Spots are found without the network: local maxima of a difference of Gaussians DETECT_SIGMA_PX
wide at least DETECT_SNR above the noise (classical.detect), that are a spot against background
only (background_test, a spot DETECT_SIGMA_PX wide), with no other maximum down to NEIGHBOUR_SNR
within ROI_PX px. Where at least MIN_ISOLATED are isolated and they are at least SPARSE_SHARE of
the spots (sparse data), each is looked up among the network's detections (within half of
ROI_PX), and the sigma comes from
- the maxima that hold exactly one, where MIN_ISOLATED do: one that holds several is mostly two
  emitters the detector saw as one; unless the sigma that comes from them is wider than any the
  network was trained on: it then reports such spots as several, and those it reports once are
  the narrowest-looking;
- else every isolated maximum.
Otherwise (dense data, or few spots) it comes from the joint fits of the groups of the network's
detections that are a spot against background only (_sigma_of_groups; none without any).
Chosen on validation stacks (seeds 12,300,801-824: 128 x 128 px, pixels 65-160 nm, sigma 1 and
2 px, 200 and 5,000 photons, EMCCD and sCMOS, 0.1 /µm²; 12,300,850-854: 160 x 160 px, sigma 1.3 px,
0.1-2 /µm², flat and 4-10x structured; 12,300,861-876: 32 x 32 and 64 x 64 px, 1-6 /µm², sigma
1.3 and 1.8 px): within 0.05 px of the truth on 28 of the first 29 behind v1 and behind the 2-D
window model (configs/cpu_2d_context_mixed.json; 1.38 and 1.84 px for 2 px at 100 nm, 200
photons, EMCCD); on the dense ones, on 15 of 16 behind v1 (1.70 for 1.8) and behind the window
model at 1.3 px (at 1.8 px, wider than it was trained on, 1.66-1.70). From the network's own
isolated detections it came out 1.20-1.92 px for 2 px behind the window model (it reports each
such spot as 4-5); from every isolated maximum, 1.37-1.57 px for 1.3 px at 1-2 /µm² and 1.71-1.95
at 4-6 /µm²; from the maxima the network reports once, 1.19-1.24 px for 1.3 at 4-6 /µm²; a spot
1 px wide in the test and a 1.5 px filter found no spot at 200 photons and sigma 2 px."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..classical.detect import detect_candidates
from ..io.camera import Camera
from .background_test import discoveries, significance
from .groups import cut_groups
from .joint import RoundSpots, fit_groups
from .mle import estimate_psf_sigma, most_likely_sigma
from .refine import PHANTOM_FDR, one_blas_thread, read_variance_photons2, start_photons, with_held_light

SIGMA_GRID_PX = np.linspace(0.5, 3.0, 26)  # PSF sigmas tried
DETECT_SIGMA_PX = 2.0  # the difference of Gaussians the spots are found with, and the spot they are tested with
DETECT_SNR, NEIGHBOUR_SNR = 5.0, 3.0  # a spot's maximum, and the weakest maximum that counts as its neighbour
TEST_SIGMA_PX = 1.0  # the spot (px) the network's detections are tested with against background only
ROI_PX = 9  # side of the windows of isolated spots (px); no other maximum within it
MIN_ISOLATED = 10  # with fewer isolated spots, the sigma comes from the network's detections in groups
SPARSE_SHARE = 0.45  # ... and where fewer than this share of the spots are isolated (dense data)
CROWDED_DETECTIONS = 300  # ... of its detections in the first frames, up to about this many


@one_blas_thread
def estimate_sigma_px(photons_THW: np.ndarray, table: pd.DataFrame, camera: Camera,
                      widest_trained_px: float | None = None) -> tuple[float | None, int]:
    """(PSF sigma in px, or None where nothing to estimate it from; the number of spots it came
    from) of (T, H, W) photon frames, beside the network's detections `table` in them (frame
    indexes photons_THW), from a network trained on PSF sigmas up to widest_trained_px (None:
    unknown; module docstring)."""
    px = camera.pixel_size_nm
    maxima, isolated = _isolated_maxima(photons_THW, camera)
    if len(isolated) >= MIN_ISOLATED and len(isolated) >= SPARSE_SHARE * maxima:
        single = isolated[_detections_within(isolated, table, ROI_PX / 2 * px) == 1]
        if len(single) >= MIN_ISOLATED:
            sigma_px = estimate_psf_sigma(_windows(photons_THW, single, px), SIGMA_GRID_PX)
            if widest_trained_px is None or sigma_px <= widest_trained_px:
                return sigma_px, len(single)
        return estimate_psf_sigma(_windows(photons_THW, isolated, px), SIGMA_GRID_PX), len(isolated)
    spots = _discoveries(photons_THW, table, camera, TEST_SIGMA_PX)
    if not len(spots):
        return None, 0
    return _sigma_of_groups(photons_THW, spots, px), len(spots)


def _isolated_maxima(photons_THW: np.ndarray, camera: Camera) -> tuple[int, pd.DataFrame]:
    """(How many maxima at DETECT_SNR are a spot against background only; frame, x_nm, y_nm (pixel
    centres) of those with no maximum at NEIGHBOUR_SNR within ROI_PX px and their window inside
    the frame)."""
    px = camera.pixel_size_nm
    weak, strong = (_maxima(detect_candidates(photons_THW, DETECT_SIGMA_PX, snr), px)
                    for snr in (NEIGHBOUR_SNR, DETECT_SNR))
    spots = _discoveries(photons_THW, strong, camera, DETECT_SIGMA_PX).reset_index(drop=True)
    _, height, width = photons_THW.shape
    half = ROI_PX // 2
    row, col = (spots["y_nm"].to_numpy() / px).astype(int), (spots["x_nm"].to_numpy() / px).astype(int)
    inside = (half <= row) & (row < height - half) & (half <= col) & (col < width - half)
    alone = _detections_within(spots, weak, ROI_PX * px) == 1  # itself (a strong maximum is a weak one too)
    return len(spots), spots[alone & inside].reset_index(drop=True)


def _maxima(found_K3: np.ndarray, px: float) -> pd.DataFrame:
    """Frame, x_nm, y_nm at the centres of the pixels (frame, row, col) found_K3, photons unknown."""
    return pd.DataFrame({"frame": found_K3[:, 0], "x_nm": (found_K3[:, 2] + 0.5) * px,
                         "y_nm": (found_K3[:, 1] + 0.5) * px, "photons": np.nan})


def _detections_within(spots: pd.DataFrame, table: pd.DataFrame, radius_nm: float) -> np.ndarray:
    """(N,) how many rows of `table` lie in each spot's frame within radius_nm of it."""
    held = np.zeros(len(spots), int)
    for frame, rows in spots.groupby("frame"):
        there = table.loc[table["frame"] == frame, ["x_nm", "y_nm"]].to_numpy()
        apart = np.hypot(*(rows[["x_nm", "y_nm"]].to_numpy()[:, None] - there[None]).transpose(2, 0, 1))
        held[rows.index] = (apart < radius_nm).sum(axis=1)
    return held


def _windows(photons_THW: np.ndarray, spots: pd.DataFrame, px: float) -> np.ndarray:
    """(N, ROI_PX, ROI_PX) photons around each spot (their windows inside the frame)."""
    half = ROI_PX // 2
    frame = spots["frame"].to_numpy().astype(int)
    row0 = (spots["y_nm"].to_numpy() / px).astype(int) - half
    col0 = (spots["x_nm"].to_numpy() / px).astype(int) - half
    rows, cols = row0[:, None] + np.arange(ROI_PX), col0[:, None] + np.arange(ROI_PX)
    return photons_THW[frame[:, None, None], rows[:, :, None], cols[:, None, :]]


def _discoveries(photons_THW: np.ndarray, table: pd.DataFrame, camera: Camera, width_px: float) -> pd.DataFrame:
    """The rows of `table` that are discoveries at PHANTOM_FDR against background only
    (background_test), each tested with a spot width_px wide (the PSF sigma is not known yet).
    The network's detections are tested with TEST_SIGMA_PX: a spot narrower than most never
    takes a real neighbour's light for its own (a wider one did, on spots 5 px apart); on a
    structured background its phantoms outnumber the spots and, left in, widened the estimate (a
    1.2 px wide spot came out 2.8 px with them). Isolated maxima, which have no such neighbour,
    are tested with DETECT_SIGMA_PX: a 1 px spot found none at 200 photons and sigma 2 px."""
    if not len(table):
        return table
    frame = table["frame"].to_numpy().astype(int)
    width = np.full(len(table), width_px)
    tested, _ = significance(np.nan_to_num(photons_THW.astype(np.float64)), read_variance_photons2(camera),
                             camera.excess_noise_factor, frame, table["x_nm"].to_numpy() / camera.pixel_size_nm,
                             table["y_nm"].to_numpy() / camera.pixel_size_nm, start_photons(table), width, width)
    return table[discoveries(tested, frame, PHANTOM_FDR)]


def _sigma_of_groups(photons_THW: np.ndarray, table: pd.DataFrame, pixel_size_nm: float) -> float:
    """The PSF sigma (px) under which the joint fits of the groups of the detections of `table`
    in its first frames (up to CROWDED_DETECTIONS of them; large groups in parts beside the light
    of their neighbours, held at the network's estimates) are most likely, on pixels chosen once
    for every sigma (within MASK_SIGMAS of a spot as wide as the middle of SIGMA_GRID_PX): every
    fifth sigma of the grid, then the grid around the best of those."""
    first = table[table["frame"] <= max(table["frame"].iloc[min(CROWDED_DETECTIONS, len(table)) - 1],
                                        table["frame"].min())]
    frame = first["frame"].to_numpy().astype(int)
    x_px, y_px = first["x_nm"].to_numpy() / pixel_size_nm, first["y_nm"].to_numpy() / pixel_size_nm
    photons = start_photons(first)
    cut = cut_groups(photons_THW, 0.0, frame, x_px, y_px, photons, np.full(len(first), np.median(SIGMA_GRID_PX)))

    def loglik(sigma: float) -> float:
        spots, total = RoundSpots(sigma), 0.0
        for batch, origins, others in zip(cut.batches, cut.origins, cut.others):
            batch = with_held_light(batch, others, origins, x_px, y_px, None, photons, spots)
            total += float(fit_groups(batch, spots).loglik.sum())
        return total

    coarse = SIGMA_GRID_PX[::5]
    best = int(np.argmax([loglik(sigma) for sigma in coarse])) * 5
    fine = SIGMA_GRID_PX[max(best - 2, 0):best + 3]
    return most_likely_sigma(fine, [loglik(sigma) for sigma in fine])
