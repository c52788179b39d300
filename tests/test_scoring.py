"""The project's one fitting loop (fit/scoring.py): its spot models' derivatives, the pixels it
evaluates, held parameters, and the Cramér–Rao bounds it states."""

import numpy as np
import pytest

from napari_var_emitter.fit import scoring
from napari_var_emitter.fit.scoring import (ASTIGMATIC, CONSTANT, FREE_ELLIPTICAL, FREE_ROUND, PER_EMITTER, QUADRATIC,
                                            ROUND, Spots, fisher_scoring)
from napari_var_emitter.plugin.sample_data import SAMPLE_PSF

SIZE = 12


def _spots(kind: int, k: int) -> Spots:
    if kind == ROUND:
        return Spots(ROUND, np.array([[[1.1, 1.4]] * k]))
    return Spots(kind, psf=SAMPLE_PSF, pixel_size_nm=100.0) if kind == ASTIGMATIC else Spots(kind)


def _theta(kind: int, k: int, n_terms: int, rng) -> np.ndarray:
    shape = {ROUND: [], ASTIGMATIC: [rng.uniform(-300, 300)], FREE_ROUND: [rng.uniform(0.9, 1.6)],
             FREE_ELLIPTICAL: list(rng.uniform(0.9, 1.6, 2))}
    emitters = [[*rng.uniform(3, 9, 2), *shape[kind], rng.uniform(500, 3000)] for _ in range(k)]
    return np.r_[np.concatenate(emitters), 20.0, rng.uniform(-5, 5, n_terms - 1)]


def _model(theta: np.ndarray, spots: Spots, k: int, n_terms: int, rows: np.ndarray, cols: np.ndarray):
    """The loop's expected photons (K,) and derivatives (P, K) at pixels (rows, cols) of one fit."""
    per, n_px = PER_EMITTER[spots.kind], len(rows)
    jac, expected = np.zeros((len(theta), n_px)), np.zeros(n_px)
    scoring._background_terms(rows, cols, SIZE, k * per, n_terms, jac)
    widths = np.zeros((k, 2)) if spots.widths_px_GK2 is None else spots.widths_px_GK2[0]
    scoring._model(theta, spots.kind, k, per, n_terms, widths, spots.curves(), spots.pixel_size_nm, rows, cols,
                   np.zeros(n_px), np.zeros(n_px), 1.0, expected, jac, np.zeros((6, SIZE)), False)
    return expected, jac


@pytest.mark.parametrize("n_terms", [CONSTANT, QUADRATIC])
@pytest.mark.parametrize("kind", [ROUND, ASTIGMATIC, FREE_ROUND, FREE_ELLIPTICAL])
def test_the_spot_models_derivatives_are_their_finite_differences_at_any_pixels(kind, n_terms):
    rng = np.random.default_rng(kind * 10 + n_terms)
    k, spots = 2, _spots(kind, 2)
    theta = _theta(kind, k, n_terms, rng)
    grid = np.arange(SIZE * SIZE)
    rows, cols = grid // SIZE, grid % SIZE
    expected, jac = _model(theta, spots, k, n_terms, rows, cols)
    for p in range(len(theta)):
        step = np.zeros(len(theta))
        step[p] = 1e-6 * max(1.0, abs(theta[p]))
        up, down = (_model(theta + sign * step, spots, k, n_terms, rows, cols)[0] for sign in (1, -1))
        np.testing.assert_allclose(jac[p], (up - down) / (2 * step[p]), rtol=1e-5, atol=1e-6)
    some = rng.permutation(grid)[:40]  # a fit's own pixels alone, in any order: the whole ROI's values there
    packed, packed_jac = _model(theta, spots, k, n_terms, rows[some], cols[some])
    np.testing.assert_allclose(packed, expected[some], rtol=1e-12)
    np.testing.assert_allclose(packed_jac, jac[:, some], rtol=1e-12, atol=1e-15)
    if kind in (ROUND, ASTIGMATIC):  # the light the rest of the stage renders (spots.light) is the loop's own
        from napari_var_emitter.fit.joint import AstigmaticSpots, RoundSpots

        per = PER_EMITTER[kind]
        model = RoundSpots(1.3) if kind == ROUND else AstigmaticSpots(SAMPLE_PSF, 100.0)
        loop = Spots(ROUND, np.full((1, k, 2), 1.3)) if kind == ROUND else spots  # widths from psf.DefocusCurve
        spots_alone = _model(np.r_[theta[:k * per], np.zeros(n_terms)], loop, k, n_terms, rows, cols)[0]
        light = model.light(theta[:k * per].reshape(k, per), SIZE).sum(0)
        np.testing.assert_allclose(spots_alone, light, rtol=1e-9, atol=1e-5)


def test_a_held_parameter_stays_where_it_starts_and_the_rest_fit_as_if_it_were_known():
    rng = np.random.default_rng(4)
    n, sigma = 300, 1.3
    xy = SIZE / 2 + rng.uniform(-1, 1, (n, 2))
    theta = np.column_stack([xy, np.full(n, sigma), np.full(n, 2000.0), np.full(n, 30.0)])
    values = np.stack([_model(row, Spots(FREE_ROUND), 1, CONSTANT, np.arange(SIZE ** 2) // SIZE,
                              np.arange(SIZE ** 2) % SIZE)[0] for row in theta])
    counts = rng.poisson(values).astype(float)
    start = theta + np.column_stack([rng.normal(0, 0.3, (n, 2)), np.zeros(n), rng.normal(0, 200, n), np.zeros(n)])
    limits = (np.array([0.5, 0.5, 0.3, np.inf, np.inf]), np.array([-1.0, -1.0, 0.5, 0.0, 1e-3]),
              np.array([SIZE + 1.0, SIZE + 1.0, 3.0, np.inf, np.inf]))
    held = np.zeros(start.shape, bool)
    held[:, 2] = True  # the width, at its true value
    free_width = fisher_scoring(counts, start, Spots(FREE_ROUND), limits, 25, SIZE, fixed_NP=held)
    known = fisher_scoring(counts, start[:, [0, 1, 3, 4]], Spots(ROUND, np.full((n, 1, 2), sigma)),
                           tuple(limit[[0, 1, 3, 4]] for limit in limits), 25, SIZE)
    assert free_width.converged.all() and known.converged.all()
    np.testing.assert_array_equal(free_width.theta[:, 2], sigma)
    np.testing.assert_allclose(free_width.theta[:, [0, 1, 3, 4]], known.theta, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(free_width.loglik, known.loglik, rtol=1e-10)
    np.testing.assert_allclose(free_width.variance[:, [0, 1, 3, 4]], known.variance, rtol=1e-6)
    assert (free_width.variance[:, 2] == 0).all()


def test_no_step_states_the_bounds_at_the_start_and_a_wrong_start_is_not_converged():
    """n_iter 0 computes the Cramér–Rao variances where theta stands (evaluate.crlb does so in 3-D):
    for an isolated round spot, the closed form of Mortensen et al. to a few per cent."""
    from napari_var_emitter.evaluate.crlb import crlb_nm

    size, sigma = 21, 1.3
    theta = np.array([[10.5, 10.5, 3000.0, 10.0]])
    limits = (np.full(4, np.inf), np.full(4, -np.inf), np.full(4, np.inf))
    at = fisher_scoring(np.zeros((1, size * size)), theta, Spots(ROUND, np.full((1, 1, 2), sigma)), limits, 0, size)
    assert not at.converged[0]
    np.testing.assert_array_equal(at.theta, theta)
    np.testing.assert_allclose(np.sqrt(at.variance[0, 0]) * 100, crlb_nm(3000.0, 10.0, sigma * 100, 100.0), rtol=0.03)


def _windows_over_background(n: int, spot_photons: float, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n frames of 13 x 13 px: Poisson counts of a tilted background (20-35 photons/px) and, where
    spot_photons > 0, a round spot (sigma 1.3 px) of that many photons at a random place near the
    middle; returns (frames (n, 13, 13) photons, x px, y px)."""
    from napari_var_emitter.psf import spot_values

    size = 13
    rows, cols = np.mgrid[:size, :size]
    x, y = rng.uniform(5.5, 7.5, n), rng.uniform(5.5, 7.5, n)
    light = 20.0 + cols[None] + 0.2 * rows[None] + np.zeros((n, 1, 1))
    if spot_photons:
        sigma = np.full(n, 1.3)
        light = light + spot_values(x, y, sigma, sigma, np.full(n, spot_photons), size).reshape(n, size, size)
    return rng.poisson(light).astype(np.float64), x, y


def _against_background(frames, x, y, known=None):
    n = len(frames)
    return scoring.spot_against_background(frames, 0.0, np.arange(n), np.zeros(n, int), np.zeros(n, int), x, y,
                                           np.full(n, 1.3), np.full(n, 1.3), 13, known, 1.0, 10, 1e4)


def test_the_test_against_background_only_is_calibrated_on_background_and_finds_spots():
    """On background alone twice the log-likelihood ratio is chi-squared with one degree of freedom
    on the half where the photons are not pinned at 0 (P(> 3.84) = 2.5 %); a spot of 1,000 photons
    stands far above it with its photons recovered; the same spot held as known light is not found again."""
    rng = np.random.default_rng(3)
    frames, x, y = _windows_over_background(4000, 0.0, rng)
    ratio, photons = _against_background(frames, x, y)
    assert 0.015 < np.mean(ratio > 3.84) < 0.035
    assert 0.45 < np.mean(photons < 1e-9) < 0.55  # the other half: no spot fits better than none
    frames, x, y = _windows_over_background(200, 1000.0, rng)
    ratio, photons = _against_background(frames, x, y)
    assert np.sqrt(ratio).min() > 15
    assert abs(np.median(photons) - 1000.0) < 30
    from napari_var_emitter.psf import spot_values

    known = spot_values(x, y, np.full(200, 1.3), np.full(200, 1.3), np.full(200, 1000.0), 13)
    ratio, _ = _against_background(frames, x, y, known)
    assert np.mean(ratio > 3.84) < 0.1
