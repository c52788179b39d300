"""The maximum-likelihood refinement after the network (fit/): joint fits of overlapping spots,
the camera's noise in the bounds, falling back to the network where a fit fails, never
crashing on bad pixels."""

import numpy as np
import pandas as pd
import pytest

from napari_var_emitter.evaluate.crlb import crlb_nm
from napari_var_emitter.fit.joint import GroupBatch, fit_groups, group_model
from napari_var_emitter.fit.refine import MAX_MOVE_PX, refine_table
from napari_var_emitter.io.camera import Camera
from napari_var_emitter.io.localizations_csv import read_localizations_csv, write_localizations_csv
from napari_var_emitter.predict import PredictOptions, predict

SIGMA_PX = 1.2
SIZE = 16


def _pairs(separation_sigmas: float, n: int, rng, photons=(2000.0, 1500.0), background=20.0):
    """n ROIs of two spots `separation_sigmas` apart (along a random direction) and the truth."""
    angle = rng.uniform(0, np.pi, n)
    half = separation_sigmas * SIGMA_PX / 2
    centre = SIZE / 2 + rng.uniform(-0.5, 0.5, (n, 2))
    xy = np.stack([centre + half * np.column_stack([np.cos(angle), np.sin(angle)]),
                   centre - half * np.column_stack([np.cos(angle), np.sin(angle)])], axis=1)  # (n, 2, 2)
    theta = np.concatenate([np.concatenate([xy, np.broadcast_to(np.array(photons)[None, :, None], (n, 2, 1))],
                                           axis=-1).reshape(n, 6), np.full((n, 1), background)], axis=1)
    values, _ = group_model(theta, SIGMA_PX, SIZE)
    return rng.poisson(values).reshape(n, SIZE, SIZE).astype(float), xy


@pytest.mark.parametrize("separation, converged, bias_sd, pull_sd", [
    (1.0, 0.9, 0.3, (0.85, 1.4)),  # 1 sigma apart the fit is not yet efficient: the bound is ~25 % optimistic
    (1.5, 0.97, 0.15, (0.85, 1.15)),
    (2.0, 0.97, 0.15, (0.85, 1.15)),
    (3.0, 0.97, 0.15, (0.85, 1.15)),
])
def test_the_joint_fit_recovers_pairs_at_1_to_3_sigma(separation, converged, bias_sd, pull_sd):
    rng = np.random.default_rng(int(separation * 10))
    counts, xy = _pairs(separation, 400, rng)
    start = xy + rng.normal(0, 0.25, xy.shape)  # the network's positions: a fraction of a pixel off
    batch = GroupBatch(counts, np.zeros_like(counts), np.ones_like(counts), start, np.full((400, 2), 1000.0),
                       np.ones((400, 2), bool))
    fit = fit_groups(batch, SIGMA_PX)
    ok = fit.converged
    assert ok.mean() > converged
    error = np.stack([fit.x_px, fit.y_px], axis=-1)[ok] - xy[ok]
    assert (np.abs(error.mean(axis=0)) < bias_sd * error.std(axis=0)).all()  # a bias small beside the spread
    for axis, bound in ((0, fit.crlb_x_px), (1, fit.crlb_y_px)):
        pull = error[..., axis] / bound[ok]  # as precise as the bound from the fit itself says
        assert (pull_sd[0] < pull.std(axis=0)).all() and (pull.std(axis=0) < pull_sd[1]).all(), pull.std(axis=0)
    np.testing.assert_allclose(np.median(fit.photons[ok], axis=0), [2000, 1500], rtol=0.06)
    np.testing.assert_allclose(np.median(fit.background[ok]), 20.0, rtol=0.05)


def test_an_isolated_fit_reaches_the_bound_and_read_noise_and_em_gain_widen_it():
    rng = np.random.default_rng(3)
    truth = np.tile([[8.3, 7.6, 3000.0, 0.0, 0.0, 0.0, 40.0]], (1, 1))
    values, _ = group_model(truth, SIGMA_PX, SIZE)
    counts = rng.poisson(np.repeat(values, 500, axis=0)).reshape(500, SIZE, SIZE).astype(float)

    def fit(variance=0.0, excess=1.0):
        batch = GroupBatch(counts, np.full_like(counts, variance), np.ones_like(counts),
                           np.tile([[[8.0, 8.0], [0.0, 0.0]]], (500, 1, 1)), np.full((500, 2), 1000.0),
                           np.tile([[True, False]], (500, 1)))
        return fit_groups(batch, SIGMA_PX, excess)

    plain = fit()
    bound = crlb_nm(3000.0, 40.0, SIGMA_PX, 1.0)  # closed form, in px (pixel size 1)
    assert np.median(plain.crlb_x_px[:, 0]) == pytest.approx(bound, rel=0.05)
    assert np.std(plain.x_px[:, 0] - 8.3) == pytest.approx(bound, rel=0.12)
    assert np.median(fit(variance=100.0).crlb_x_px[:, 0]) > 1.2 * bound  # sCMOS read noise
    assert np.median(fit(excess=2.0).crlb_x_px[:, 0]) == pytest.approx(np.sqrt(2) * bound, rel=0.06)  # EMCCD


def _table(rows):
    return pd.DataFrame(rows, columns=["frame", "x_nm", "y_nm", "photons", "probability", "uncertainty_nm"])


def test_a_fit_that_leaves_its_pixels_or_finds_no_light_keeps_the_network_estimate():
    camera = Camera(pixel_size_nm=100.0, read_noise_e=1.0)
    rng = np.random.default_rng(4)
    frame = np.zeros((1, 40, 40))
    values, _ = group_model(np.array([[10.5, 10.5, 3000.0, 0.0, 0.0, 0.0, 0.0]]), SIGMA_PX, 21)
    frame[0, :21, :21] += values.reshape(21, 21)
    frame = rng.poisson(frame + 10.0).astype(float)
    table = _table([[0, 1050.0, 1050.0, 2800.0, 0.9, 12.0],   # on the spot: fitted
                    [0, 3000.0, 3000.0, 2500.0, 0.5, 15.0]])  # on background only: the fit finds nothing
    refined = refine_table(table, frame, camera, SIGMA_PX)
    assert refined["fitted"].tolist() == [1, 0]
    assert refined.loc[1, ["x_nm", "y_nm", "photons"]].tolist() == [3000.0, 3000.0, 2500.0]
    assert refined.loc[1, "uncertainty_x_nm"] == 15.0  # the network's own
    assert np.hypot(refined.loc[0, "x_nm"] - 1050, refined.loc[0, "y_nm"] - 1050) < 10
    assert refined.loc[0, "uncertainty_x_nm"] < 5
    # a detection 3 px from the spot it belongs to: the fit would move it more than MAX_MOVE_PX
    far = _table([[0, 1050.0 + 100 * (MAX_MOVE_PX + 1.5), 1050.0, 2800.0, 0.9, 12.0]])
    moved = refine_table(far, frame, camera, SIGMA_PX)
    assert moved["fitted"].tolist() == [0] and moved.loc[0, "x_nm"] == far.loc[0, "x_nm"]


def test_nan_pixels_and_empty_rois_never_crash_the_stage():
    camera = Camera(pixel_size_nm=100.0)
    frame = np.zeros((2, 32, 32))
    frame[0, 10:13, 10:13] = np.nan
    table = _table([[0, 1150.0, 1150.0, 1000.0, 0.9, 10.0], [1, 1600.0, 1600.0, 1000.0, 0.9, 10.0],
                    [1, 50.0, 50.0, 1000.0, 0.9, 10.0]])  # at the frame's corner
    refined = refine_table(table, frame, camera, SIGMA_PX)
    assert len(refined) == 3 and np.isfinite(refined[["x_nm", "y_nm", "photons", "uncertainty_x_nm"]]).all().all()
    assert refine_table(table.iloc[:0], frame, camera, SIGMA_PX).empty
    assert refine_table(table, frame, camera, None)["fitted"].tolist() == [0, 0, 0]  # no PSF: the network's


def test_predict_refines_by_default_and_the_csv_carries_per_axis_uncertainties(small_stack, tmp_path):
    frames, truth = small_stack
    camera = Camera(baseline_adu=100, e_per_adu=2.0)
    refined = predict(frames, camera).table
    network = predict(frames, camera, PredictOptions(refine=False)).table
    assert len(refined) == len(network) and refined["fitted"].mean() > 0.9 and "fitted" not in network
    assert {"uncertainty_x_nm", "uncertainty_y_nm"} <= set(refined.columns)
    write_localizations_csv(tmp_path / "r.csv", refined)
    back = read_localizations_csv(tmp_path / "r.csv")
    assert back["fitted"].dtype.kind == "i" and np.allclose(back["uncertainty_x_nm"], refined["uncertainty_x_nm"],
                                                            rtol=1e-6)
    header = (tmp_path / "r.csv").read_text().splitlines()[0]
    assert '"uncertainty_x [nm]"' in header and '"fitted"' in header
