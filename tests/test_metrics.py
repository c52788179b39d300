import numpy as np
import pandas as pd
import pytest

from napari_var_emitter.evaluate.matching import match_frames
from napari_var_emitter.evaluate.metrics import evaluate
from napari_var_emitter.io.camera import Camera
from napari_var_emitter.io.emitters_h5 import GroundTruth
from napari_var_emitter.psf import PSF


def _truth(rows, psf=None):
    psf = psf or PSF()
    table = pd.DataFrame(rows, columns=["frame", "x_nm", "y_nm", "z_nm"])
    table = table.assign(photons=2000.0, id=np.arange(len(table)), background=50.0)
    return GroundTruth(table, Camera(), psf.to_dict(), (64, 64), 10)


def _pred(rows, columns=("frame", "x_nm", "y_nm")):
    return pd.DataFrame(rows, columns=list(columns))


def test_known_counts_and_errors():
    truth = _truth([(0, 1000, 1000, 0), (0, 3000, 3000, 0), (1, 500, 500, 0), (2, 800, 800, 0)])
    pred = _pred([
        (0, 1030, 1040),   # TP: error (30, 40) -> 50 nm
        (0, 3000, 2950),   # TP: error (0, -50)
        (1, 2000, 2000),   # FP: 1.5 µm away
        (3, 800, 800),     # FP: right place, wrong frame
    ])                     # FN: (1, 500, 500) and (2, 800, 800)
    report = evaluate(pred, truth)
    assert (report["tp"], report["fp"], report["fn"]) == (2, 2, 2)
    assert report["jaccard"] == pytest.approx(100 * 2 / 6)
    assert report["recall"] == 0.5 and report["precision"] == 0.5
    assert report["rmse_lateral_nm"] == pytest.approx(50.0)
    assert report["rmse_x_nm"] == pytest.approx(np.sqrt((30**2 + 0) / 2))
    assert report["bias_y_nm"] == pytest.approx((40 - 50) / 2)
    assert report["efficiency_lateral"] == pytest.approx(100 - np.hypot(100 - 100 / 3, 50.0))
    assert "rmse_axial_nm" not in report


def test_tolerance_is_inclusive_and_respected():
    truth = _truth([(0, 1000, 1000, 0), (0, 5000, 5000, 0)])
    pred = _pred([(0, 1250, 1000), (0, 5250.5, 5000)])
    report = evaluate(pred, truth, lateral_tol_nm=250)
    assert (report["tp"], report["fp"], report["fn"]) == (1, 1, 1)


def test_hungarian_beats_greedy():
    # greedy nearest-first pairs p0-t1 (10 nm) and leaves p1 and t0 apart (> tolerance)
    truth = _truth([(0, 0, 0, 0), (0, 200, 0, 0)])
    pred = _pred([(0, 190, 0), (0, 400, 0)])
    p, t = match_frames(pred, truth.emitters, 230)
    assert sorted(zip(p, t, strict=True)) == [(0, 0), (1, 1)]


def test_axial_tolerance_in_3d():
    truth = _truth([(0, 1000, 1000, 0), (0, 3000, 3000, 100)], psf=PSF(astigmatism=True))
    pred = _pred([(0, 1000, 1000, 600), (0, 3000, 3000, 300)], ("frame", "x_nm", "y_nm", "z_nm"))
    report = evaluate(pred, truth, axial_tol_nm=500)
    assert (report["tp"], report["fp"], report["fn"]) == (1, 1, 1)
    assert report["rmse_axial_nm"] == pytest.approx(200.0)
    assert report["efficiency_axial"] == pytest.approx(100 - np.hypot(100 - 100 / 3, 0.5 * 200))


def test_empty_prediction():
    report = evaluate(_pred([]), _truth([(0, 1000, 1000, 0)]))
    assert (report["tp"], report["fp"], report["fn"], report["jaccard"]) == (0, 0, 1, 0.0)
    assert np.isnan(report["rmse_lateral_nm"])


def test_min_photons_leaves_dim_emitters_out_without_penalty():
    truth = _truth([(0, 1000, 1000, 0), (0, 3000, 3000, 0), (0, 6000, 6000, 0)])
    truth.emitters.loc[1, "photons"] = 300.0  # dim
    pred = _pred([(0, 1010, 1000), (0, 3000, 3010), (0, 9000, 9000)])  # TP, TP on dim, FP
    everything = evaluate(pred, truth)
    assert (everything["tp"], everything["fp"], everything["fn"]) == (2, 1, 1)
    bright = evaluate(pred, truth, min_photons=1000)
    assert (bright["n_truth"], bright["n_pred"]) == (2, 2)
    assert (bright["tp"], bright["fp"], bright["fn"]) == (1, 1, 1)
