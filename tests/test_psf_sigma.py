"""The PSF sigma of a 2-D run, estimated from its frames beside the network's detections
(fit/psf_sigma.py): isolated spots, pairs the detector merges, spots the network reports as
several, dense data, phantoms on a structured background."""

import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import gaussian_filter, maximum_filter

from napari_var_emitter.fit.psf_sigma import estimate_sigma_px
from napari_var_emitter.io.camera import Camera
from napari_var_emitter.psf import render_spots
from napari_var_emitter.simulate.background import structured_field

CAMERA = Camera(pixel_size_nm=100.0, read_noise_e=1.0)
SIGMA_PX = 1.2


def _frames(spots_by_frame: list, sigma_px: float, size: int, background=20.0, seed=0) -> np.ndarray:
    """(T, size, size) Poisson photons of round spots [(x_px, y_px, photons), ...] per frame."""
    frame = np.concatenate([np.full(len(spots), t) for t, spots in enumerate(spots_by_frame)]).astype(int)
    x, y, photons = np.concatenate([np.reshape(spots, (-1, 3)) for spots in spots_by_frame]).T
    width = np.full(len(x), sigma_px)
    expected = render_spots((len(spots_by_frame), size, size), frame, x, y, width, width, photons)
    return np.random.default_rng(seed).poisson(expected + background).astype(float)


def _table(rows) -> pd.DataFrame:
    """The network's detections: rows of (frame, x_px, y_px)."""
    frame, x, y = np.reshape(rows, (-1, 3)).T
    return pd.DataFrame({"frame": frame.astype(int), "x_nm": 100.0 * x, "y_nm": 100.0 * y,
                         "photons": 1800.0, "probability": 0.9, "uncertainty_nm": 20.0})


def _sites(rng, frames: int, size: int, spacing: float) -> list[np.ndarray]:
    """Per frame, (n, 2) positions (px) on a grid `spacing` apart, jittered by up to 1 px, away from the edge."""
    ticks = np.arange(spacing / 2 + 2, size - spacing / 2 - 1, spacing)
    grid = np.stack(np.meshgrid(ticks, ticks), -1).reshape(-1, 2)
    return [grid + rng.uniform(-1, 1, grid.shape) for _ in range(frames)]


def test_pairs_the_detector_sees_as_one_spot_are_left_out_where_the_network_sees_two():
    """Spots 1.2 px wide 14 px apart, every third a pair 2 px apart (one maximum of the
    difference of Gaussians): where the network reports both, the pair's window is left out
    and the sigma comes out right; where it reported them as one, the pairs widen it."""
    rng = np.random.default_rng(3)
    spots, as_two, as_one = [], [], []
    for t, sites in enumerate(_sites(rng, 4, 60, 14.0)):
        frame_spots = []
        for i, (x, y) in enumerate(sites):
            if i % 3:
                frame_spots.append((x, y, 2000.0))
                as_two.append((t, x, y))
            else:
                frame_spots += [(x - 1.0, y, 1500.0), (x + 1.0, y, 1500.0)]
                as_two += [(t, x - 1.0, y), (t, x + 1.0, y)]
            as_one.append((t, x, y))
        spots.append(frame_spots)
    frames = _frames(spots, SIGMA_PX, 60)
    sigma_px, used = estimate_sigma_px(frames, _table(as_two), CAMERA)
    assert sigma_px == pytest.approx(SIGMA_PX, rel=0.04) and used == 4 * 10  # the 10 single spots of each frame
    widened, used = estimate_sigma_px(frames, _table(as_one), CAMERA)
    assert widened > 1.06 * SIGMA_PX and used == 4 * 16


def test_spots_wider_than_the_network_knows_are_measured_where_it_reports_each_as_several():
    """Spots 2 px wide, each reported as four detections 1 px from its centre (as a network
    trained on narrower spots does): the sigma still comes out 2 px."""
    rng = np.random.default_rng(5)
    sites = _sites(rng, 4, 64, 16.0)
    frames = _frames([np.c_[xy, np.full(len(xy), 3000.0)] for xy in sites], 2.0, 64)
    offsets = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    fragments = [(t, *(xy + offset)) for t, frame_sites in enumerate(sites) for xy in frame_sites for offset in offsets]
    sigma_px, used = estimate_sigma_px(frames, _table(fragments), CAMERA, widest_trained_px=1.6)
    assert sigma_px == pytest.approx(2.0, rel=0.04) and used == sum(len(s) for s in sites)


def test_spots_wider_than_the_network_knows_are_measured_on_every_isolated_spot():
    """Spots 2 px wide, every third a pair the network reports as two: from a network trained up
    to 2.5 px the pairs are left out; from one trained up to 1.6 px the spots it reports once
    say nothing about neighbours (it reports spots that wide as several), and every isolated
    spot counts."""
    rng = np.random.default_rng(6)
    spots, rows = [], []
    for t, sites in enumerate(_sites(rng, 4, 64, 16.0)):
        frame_spots = []
        for i, (x, y) in enumerate(sites):
            pair = [(x - 1.2, y), (x + 1.2, y)] if i % 3 == 0 else [(x, y)]
            frame_spots += [(px, py, 3000.0 / len(pair)) for px, py in pair]
            rows += [(t, px, py) for px, py in pair]
        spots.append(frame_spots)
    frames, table = _frames(spots, 2.0, 64), _table(rows)
    sigma_px, used = estimate_sigma_px(frames, table, CAMERA, widest_trained_px=2.5)
    assert sigma_px == pytest.approx(2.0, rel=0.04) and used == 4 * 6
    _, used = estimate_sigma_px(frames, table, CAMERA, widest_trained_px=1.6)
    assert used == 4 * 9


def test_the_psf_sigma_is_estimated_where_no_spot_is_isolated():
    rng = np.random.default_rng(8)
    grid = np.stack(np.meshgrid(np.arange(4, 40, 5.0), np.arange(4, 40, 5.0)), -1).reshape(-1, 2)  # 5 px apart
    spots, rows = [], []
    for frame in range(3):
        xy = grid + rng.uniform(-1, 1, grid.shape)
        spots.append(np.c_[xy, np.full(len(xy), 2000.0)])
        rows += [(frame, x, y) for x, y in xy + rng.normal(0, 0.2, xy.shape)]
    sigma_px, used = estimate_sigma_px(_frames(spots, SIGMA_PX, 44), _table(rows), CAMERA)
    assert sigma_px == pytest.approx(SIGMA_PX, rel=0.04) and used == len(rows)


def test_the_psf_sigma_is_not_widened_by_phantoms_on_a_structured_background():
    """A network out of its envelope puts phantoms on the noise of bright background (here 20-400
    photons/px): they outnumber the real spots and leave none isolated; taken as spots, they made
    the estimate 2.8 px for spots 1.2 px wide."""
    rng = np.random.default_rng(1)
    frames, rows = [], []
    for frame in range(4):
        sites = rng.uniform(6, 58, (6, 2))
        background = 20 + 380 * structured_field((64, 64), 100.0, rng)
        expected = render_spots((1, 64, 64), np.zeros(6, int), sites[:, 0], sites[:, 1], np.full(6, SIGMA_PX),
                                np.full(6, SIGMA_PX), np.full(6, 2000.0))[0]
        photons = rng.poisson(expected + background).astype(float)
        smooth = gaussian_filter(photons - gaussian_filter(photons, 4), SIGMA_PX)
        peaks = np.argwhere((smooth == maximum_filter(smooth, 5)) & (background > 150))[:, ::-1] + 0.5
        peaks = peaks[np.hypot(*(peaks[:, None] - sites[None]).T).min(0) > 4][:40]  # where the network's phantoms sit
        frames.append(photons)
        rows += [(frame, x, y) for x, y in np.r_[sites, peaks]]
    assert len(rows) > 150
    sigma_px, used = estimate_sigma_px(np.array(frames), _table(rows), CAMERA)
    assert sigma_px == pytest.approx(SIGMA_PX, rel=0.1) and used < 30
