"""Astigmatic defocus curves fitted to bead widths, and the focal offset of the bead stack.

Each axis gets sigma(z) = sigma0·sqrt(1 + u² + A·u³ + B·u⁴), u = (z − focus)/d (psf.DefocusCurve),
fitted by robust least squares to every bead's widths. z = 0 is then put midway between the x and
y foci: the stack's own z (centred on its middle slice, or from z_start) is shifted by the focal
offset found.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.optimize import least_squares

from ..errors import InputError
from ..io.camera import Camera
from ..psf import PSF, DefocusCurve, astigmatic_psf
from ..simulate.beads import slice_z_nm
from .beads import BeadFits, fit_beads

EDGE_SLICES = 3  # a focus found within this many slices of either end of the stack is not trusted
ROBUST_SCALE_NM = 5.0  # widths further than this from the curve count less (soft L1)


@dataclasses.dataclass
class PSFCalibration:
    """A fitted calibration: the astigmatic PSF (z = 0 midway between the foci; z_range_nm the
    calibrated range), the shift from the stack's z to it, and what it was fitted to."""

    psf: PSF
    focal_offset_nm: float  # z (calibrated) of the stack's z = 0: its middle slice, or z_start
    z_nm: np.ndarray  # (S,) calibrated z of each slice
    beads: BeadFits
    pixel_size_nm: float
    z_step_nm: float

    def residuals_nm(self) -> tuple[np.ndarray, np.ndarray]:
        """(K, S) measured minus fitted sigma_x and sigma_y (nm); NaN where a fit was left out."""
        sigma_x, sigma_y = self.psf.sigmas_nm(self.z_nm)
        return self.beads.sigma_x_nm_KS - sigma_x, self.beads.sigma_y_nm_KS - sigma_y

    def residual_rms_nm(self) -> tuple[float, float]:
        return tuple(float(np.sqrt(np.nanmean(r**2))) for r in self.residuals_nm())

    def summary(self) -> dict:
        """What the calibration was fitted to and how well (JSON values; the file's bead_stack)."""
        rms_x, rms_y = self.residual_rms_nm()
        return {"slices": len(self.z_nm), "z_step_nm": self.z_step_nm, "beads": len(self.beads.x_nm),
                "beads_left_out": self.beads.left_out, "focal_offset_nm": self.focal_offset_nm,
                "residual_rms_nm": {"x": rms_x, "y": rms_y}}


def calibrate_psf(frames_adu: np.ndarray, camera: Camera, z_step_nm: float,
                  z_start_nm: float | None = None) -> PSFCalibration:
    """Calibrate an astigmatic PSF from an (S, H, W) ADU bead z-stack whose slice k images
    z = z_start + k·z_step (nm), or (k − (S − 1)/2)·z_step without z_start."""
    if not z_step_nm > 0:
        raise InputError(f"--z-step must be > 0 nm, got {z_step_nm}")
    beads = fit_beads(frames_adu, camera)
    z_stack = slice_z_nm(len(frames_adu), z_step_nm, z_start_nm)
    curve_x = _fit_curve(z_stack, beads.sigma_x_nm_KS, "x")
    curve_y = _fit_curve(z_stack, beads.sigma_y_nm_KS, "y")
    middle = (curve_x.focus_nm + curve_y.focus_nm) / 2
    measured = np.isfinite(beads.sigma_x_nm_KS).any(axis=0) & np.isfinite(beads.sigma_y_nm_KS).any(axis=0)
    z_range = (float(z_stack[measured].min() - middle), float(z_stack[measured].max() - middle))
    psf = astigmatic_psf(dataclasses.replace(curve_x, focus_nm=curve_x.focus_nm - middle),
                         dataclasses.replace(curve_y, focus_nm=curve_y.focus_nm - middle), z_range)
    return PSFCalibration(psf=psf, focal_offset_nm=float(-middle), z_nm=z_stack - middle, beads=beads,
                          pixel_size_nm=camera.pixel_size_nm, z_step_nm=float(z_step_nm))


def _fit_curve(z_S: np.ndarray, sigma_nm_KS: np.ndarray, axis: str) -> DefocusCurve:
    """One axis's DefocusCurve fitted to every bead's widths (NaN left out)."""
    measured = np.isfinite(sigma_nm_KS).any(axis=0)
    median_S = np.full(len(z_S), np.nan)
    median_S[measured] = np.nanmedian(sigma_nm_KS[:, measured], axis=0)
    if measured.sum() < 7:
        raise InputError(f"only {int(measured.sum())} slices have a {axis} width: the beads are too faint "
                         "or out of focus in most slices")
    best = int(np.nanargmin(median_S))
    first, last = np.flatnonzero(measured)[[0, -1]]
    if best < first + EDGE_SLICES or best > last - EDGE_SLICES:
        end = "start" if best < first + EDGE_SLICES else "end"
        raise InputError(f"the beads' {axis} width is smallest at the {end} of the stack (z = {z_S[best]:.0f} nm): "
                         f"the stack does not reach the {axis} focus; take a z-stack that covers both foci "
                         "with a few hundred nm to spare")
    sigma0, focus = float(median_S[best]), float(z_S[best])
    wide = measured & (median_S >= np.sqrt(2) * sigma0)
    depth = float(np.min(np.abs(z_S[wide] - focus))) if wide.any() else float(np.ptp(z_S[measured]) / 2)
    k, s = np.nonzero(np.isfinite(sigma_nm_KS))
    z, sigma = z_S[s], sigma_nm_KS[k, s]

    def residual(p):
        return DefocusCurve(p[0], p[1], p[2], p[3], p[4]).sigma_nm(z) - sigma

    fit = least_squares(residual, [sigma0, focus, max(depth, 50.0), 0.0, 0.0], loss="soft_l1",
                        f_scale=ROBUST_SCALE_NM, bounds=([1.0, -np.inf, 10.0, -np.inf, -np.inf], np.inf))
    return DefocusCurve(*(float(v) for v in fit.x))
