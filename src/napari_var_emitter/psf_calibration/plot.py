"""The calibration plot: bead widths with the fitted defocus curves (top) and their residuals
(bottom) against z, in given colours (the CLI saves it as PNG, the widget draws it in napari's theme)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..analysis.plots import Colours, style
from .defocus import PSFCalibration


def draw_psf_calibration(figure: Figure, calibration: PSFCalibration, colours: Colours = Colours()) -> None:
    figure.clear()
    figure.set_facecolor(colours.background)
    curves, residuals = figure.add_subplot(2, 1, 1), figure.add_subplot(2, 1, 2)
    z = calibration.z_nm
    fine_z = np.linspace(*calibration.psf.z_range_nm, 400)
    beads = calibration.beads
    rms = calibration.residual_rms_nm()
    for name, measured, fitted, residual, colour, error in zip(
            ("σx", "σy"), (beads.sigma_x_nm_KS, beads.sigma_y_nm_KS), calibration.psf.sigmas_nm(fine_z),
            calibration.residuals_nm(), (colours.accent, colours.second), rms, strict=True):
        curves.plot(np.broadcast_to(z, measured.shape).ravel(), measured.ravel(), ".", color=colour, ms=2, alpha=0.5)
        curves.plot(fine_z, fitted, color=colour, lw=1.5, label=f"{name} [nm]")
        residuals.plot(np.broadcast_to(z, residual.shape).ravel(), residual.ravel(), ".", color=colour, ms=2,
                       label=f"{name}: RMS {error:.1f} nm")
    residuals.axhline(0, color=colours.foreground, lw=0.8)
    curves.set_ylabel("width σ [nm]")
    residuals.set_ylabel("residual [nm]")
    residuals.set_xlabel("z [nm] (0 midway between the foci)")
    centre_nm = calibration.focal_offset_nm + 0.0  # (+ 0.0: no "-0.0")
    curves.set_title(f"{len(beads.x_nm)} beads; stack centre at z = {centre_nm:.1f} nm", fontsize=9)
    for axes in (curves, residuals):
        style(axes, colours)
        legend = axes.legend(fontsize=7, frameon=False)
        for text in legend.get_texts():
            text.set_color(colours.foreground)
