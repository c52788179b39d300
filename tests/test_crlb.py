import numpy as np
import pytest

from napari_var_emitter.fit.mle import fit_spots
from napari_var_emitter.evaluate.crlb import crlb_nm
from napari_var_emitter.psf import render_spots
from napari_var_emitter.simulate.camera_noise import expose
from napari_var_emitter.io.camera import Camera


def test_limits_of_the_formula():
    a, sigma, n = 100.0, 130.0, 1000.0
    sigma_a2 = sigma**2 + a**2 / 12
    # no background: the MLE bound is sigma_a^2 / N
    assert crlb_nm(n, 1e-12, sigma, a) == pytest.approx(np.sqrt(sigma_a2 / n), rel=1e-3)
    assert crlb_nm(n, 50, sigma, a, 2.0) == pytest.approx(np.sqrt(2) * crlb_nm(n, 50, sigma, a))
    assert crlb_nm(n, 100, sigma, a) > crlb_nm(n, 10, sigma, a) > crlb_nm(4 * n, 10, sigma, a)


def _fit_precision(photons, background, camera, n_spots=3000, seed=0):
    """Std of MLE x estimates over simulated spots (sigma 130 nm, pixel size from camera)."""
    rng = np.random.default_rng(seed)
    px, sigma_px, size = camera.pixel_size_nm, 130.0 / camera.pixel_size_nm, 9
    x = 4.0 + rng.uniform(0, 1, n_spots)
    y = 4.0 + rng.uniform(0, 1, n_spots)
    expected = render_spots((n_spots, size, size), np.arange(n_spots), x, y,
                            np.full(n_spots, sigma_px), np.full(n_spots, sigma_px),
                            np.full(n_spots, photons)) + background
    rois = camera.adu_to_photons(expose(expected, camera, rng))
    fit = fit_spots(rois, sigma_px)
    return np.std(fit["x_px"] - x) * px, np.std(fit["y_px"] - y) * px


@pytest.mark.parametrize("photons, background", [(5000, 20), (2000, 50), (1000, 10)])
def test_crlb_matches_monte_carlo_mle(photons, background):
    camera = Camera(pixel_size_nm=100.0, baseline_adu=100.0, e_per_adu=0.05, read_noise_e=0.0)
    sx, sy = _fit_precision(photons, background, camera)
    bound = crlb_nm(photons, background, 130.0, 100.0)
    assert sx == pytest.approx(bound, rel=0.10)
    assert sy == pytest.approx(bound, rel=0.10)


def test_emccd_excess_noise_doubles_variance():
    camera = Camera(pixel_size_nm=100.0, baseline_adu=100.0, e_per_adu=5.0, em_gain=100.0,
                    read_noise_e=0.0, type="EMCCD")
    sx, sy = _fit_precision(3000, 20, camera, seed=1)
    bound = crlb_nm(3000, 20, 130.0, 100.0, camera.excess_noise_factor)
    assert np.hypot(sx, sy) / np.sqrt(2) == pytest.approx(bound, rel=0.10)


def test_a_single_spot_fit_says_when_its_window_holds_light_it_does_not_explain():
    """fit_spots' misfit (the refinement's rule) is about 1 for a lone spot and well above it for a
    pair fitted as one, which the classical localize widens its bounds by (a new user found its
    uncertainties 4-13 times too small on a dense 3-D movie)."""
    rng, size, sigma_px = np.random.default_rng(3), 9, 1.3
    n = 400
    lone = render_spots((n, size, size), np.arange(n), np.full(n, 4.5), np.full(n, 4.5), np.full(n, sigma_px),
                        np.full(n, sigma_px), np.full(n, 3000.0)) + 20.0
    pair = lone - 20.0 + render_spots((n, size, size), np.arange(n), np.full(n, 6.5), np.full(n, 4.5),
                                      np.full(n, sigma_px), np.full(n, sigma_px), np.full(n, 3000.0)) + 20.0
    alone, merged = (fit_spots(rng.poisson(expected).astype(float), sigma_px)["misfit"] for expected in (lone, pair))
    assert 0.8 < np.median(alone) < 1.3 and np.median(merged) > 3 * np.median(alone)


def test_the_classical_localize_states_the_bound_of_a_lone_spot_on_an_emccd():
    """Its fit is plain Poisson: on an EMCCD the excess noise alone puts a lone spot's misfit near 2,
    which must not widen the bound that already carries the excess factor (review: 1.28x)."""
    from napari_var_emitter.classical.localize import localize_stack

    camera = Camera(pixel_size_nm=100.0, baseline_adu=100.0, e_per_adu=5.0, em_gain=100.0, read_noise_e=0.0,
                    type="EMCCD")
    rng, n_frames = np.random.default_rng(12), 30
    centres = np.array([(12.3 + 16 * i, 12.6 + 16 * j) for i in range(4) for j in range(4)])
    frame = np.repeat(np.arange(n_frames), len(centres))
    x, y = np.tile(centres[:, 0], n_frames), np.tile(centres[:, 1], n_frames)
    expected = render_spots((n_frames, 64, 64), frame, x, y, np.full(frame.size, 1.3), np.full(frame.size, 1.3),
                            np.full(frame.size, 3000.0)) + 20.0
    table = localize_stack(expose(expected, camera, rng), camera, sigma_nm=130.0)
    bound = crlb_nm(3000.0, 20.0, 130.0, 100.0, camera.excess_noise_factor)
    assert len(table) >= 0.9 * frame.size and np.median(table["uncertainty_nm"]) / bound == pytest.approx(1.0, abs=0.12)
