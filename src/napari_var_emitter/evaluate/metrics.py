"""SMLM Challenge 2016 metrics of a localisation table against ground truth."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io.emitters_h5 import GroundTruth
from ..psf import PSF
from .crlb import crlb_3d_nm, crlb_nm
from .matching import match_frames

ALPHA_LATERAL = 1.0  # nm^-1, efficiency weight of lateral RMSE
ALPHA_AXIAL = 0.5  # nm^-1, efficiency weight of axial RMSE


def evaluate(pred: pd.DataFrame, truth: GroundTruth | pd.DataFrame, lateral_tol_nm: float = 250.0,
             axial_tol_nm: float = 500.0, min_photons: float | None = None) -> dict[str, Any]:
    """Match `pred` to `truth` per frame and score the result.

    `truth` is ground truth with its camera and PSF (emitters.h5), or a bare table (another
    group's truth, another fitter's localisations): then the Cramér-Rao bound is left out.
    3-D (axial tolerance, axial RMSE and efficiency) applies when the truth PSF is astigmatic
    (a bare table: has z_nm) and `pred` has z_nm; with an astigmatic truth PSF the bounds are
    per axis (crlb_x/y/z_nm, rmse_over_crlb_x/y/z). With `min_photons`, matching still uses every
    true emitter, then dimmer true emitters and the predictions matched to them are left out
    (finding a dim emitter is no false positive). Returns a flat dict (JSON-ready).
    """
    if isinstance(truth, pd.DataFrame):
        psf, emitters = None, truth
        is_3d = "z_nm" in emitters.columns and "z_nm" in pred.columns
    else:
        psf, emitters = PSF.from_dict(truth.psf), truth.emitters
        is_3d = psf.astigmatism and "z_nm" in pred.columns
    if min_photons is not None and "photons" not in emitters.columns:
        raise InputError("the truth table has no photons column: leave out the photon cut (--min-photons)")
    p_idx, t_idx = match_frames(pred, emitters, lateral_tol_nm, axial_tol_nm if is_3d else None)
    if min_photons is not None:
        bright = emitters["photons"].to_numpy() >= min_photons
        keep = bright[t_idx]
        n_pred = len(pred) - int((~keep).sum())
        p_idx, t_idx = p_idx[keep], t_idx[keep]
        emitters_counted = int(bright.sum())
    else:
        n_pred, emitters_counted = len(pred), len(emitters)
    tp = len(p_idx)
    fp, fn = n_pred - tp, emitters_counted - tp
    matched_pred, matched_truth = pred.iloc[p_idx], emitters.iloc[t_idx]
    dx = matched_pred["x_nm"].to_numpy() - matched_truth["x_nm"].to_numpy()
    dy = matched_pred["y_nm"].to_numpy() - matched_truth["y_nm"].to_numpy()
    jaccard = 100.0 * tp / max(tp + fp + fn, 1)
    rmse_lateral = _rms(np.hypot(dx, dy))
    report: dict[str, Any] = {
        "n_truth": emitters_counted, "n_pred": n_pred, "tp": tp, "fp": fp, "fn": fn,
        "jaccard": jaccard,
        "recall": tp / max(emitters_counted, 1),
        "precision": tp / max(n_pred, 1),
        "rmse_lateral_nm": rmse_lateral, "rmse_x_nm": _rms(dx), "rmse_y_nm": _rms(dy),
        "bias_x_nm": _mean(dx), "bias_y_nm": _mean(dy),
        "efficiency_lateral": _efficiency(jaccard, rmse_lateral, ALPHA_LATERAL),
    }
    dz = matched_pred["z_nm"].to_numpy() - matched_truth["z_nm"].to_numpy() if is_3d else None
    if is_3d:
        report.update(rmse_axial_nm=_rms(dz), bias_z_nm=_mean(dz),
                      efficiency_axial=_efficiency(jaccard, _rms(dz), ALPHA_AXIAL))
    if psf is not None and psf.astigmatism:
        bounds = _crlb_3d(matched_truth, psf, truth)
        errors = {"x": dx, "y": dy, "z": dz}
        crlb_lateral = float(np.sqrt(np.mean(bounds["x"] ** 2 + bounds["y"] ** 2))) if tp else float("nan")
        report.update(crlb_lateral_nm=crlb_lateral, rmse_over_crlb=rmse_lateral / crlb_lateral)
        for axis, bound in bounds.items():
            rms_bound = _rms(bound)
            report[f"crlb_{axis}_nm"] = rms_bound
            if errors[axis] is not None:
                report[f"rmse_over_crlb_{axis}"] = _rms(errors[axis]) / rms_bound
    elif psf is not None:
        crlb_lateral = _crlb_lateral(matched_truth, psf, truth)
        report.update(crlb_lateral_nm=crlb_lateral, rmse_over_crlb=rmse_lateral / crlb_lateral)
    return report


def _crlb_lateral(matched: pd.DataFrame, psf: PSF, truth: GroundTruth) -> float:
    """RMS over matched emitters of the 2-D lateral bound sqrt(var_x + var_y), in nm."""
    if matched.empty:
        return float("nan")
    camera = truth.camera
    photons = matched["photons"].to_numpy() * camera.qe
    background = matched["background"].to_numpy() * camera.qe
    var = 2 * crlb_nm(photons, background, psf.sigma_nm, camera.pixel_size_nm, camera.excess_noise_factor) ** 2
    return float(np.sqrt(np.mean(var)))


def _crlb_3d(matched: pd.DataFrame, psf: PSF, truth: GroundTruth) -> dict[str, np.ndarray]:
    """Per matched emitter, the x, y and z bounds (nm) of an astigmatic fit (crlb_3d_nm)."""
    if matched.empty:
        return {axis: np.empty(0) for axis in "xyz"}
    camera = truth.camera
    bounds = crlb_3d_nm(matched["photons"].to_numpy() * camera.qe, matched["background"].to_numpy() * camera.qe,
                        matched["z_nm"].to_numpy(), psf, camera.pixel_size_nm, camera.excess_noise_factor)
    return dict(zip("xyz", bounds, strict=True))


def _efficiency(jaccard: float, rmse_nm: float, alpha: float) -> float:
    """E = 100 - sqrt((100 - JI)^2 + alpha^2 RMSE^2), in %; NaN without matches."""
    return float(100.0 - np.sqrt((100.0 - jaccard) ** 2 + (alpha * rmse_nm) ** 2))


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(values**2))) if values.size else float("nan")


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if values.size else float("nan")


def format_report(report: dict[str, Any]) -> str:
    """The report as an aligned two-column text table."""
    width = max(map(len, report))
    lines = []
    for key, value in report.items():
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        lines.append(f"{key:<{width}}  {text}")
    return "\n".join(lines)
