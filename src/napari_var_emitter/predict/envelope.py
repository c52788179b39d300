"""What a model was trained on (the ranges its card states) and the check of a user's camera and
measured data against them: plain-words warnings that say what looks wrong and what to do."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..io.camera import Camera
from ..model.checkpoint import BUNDLED, BUNDLED_FAST, read_card
from ..psf import PSF
from ..simulate.psf_family import CalibrationFamily

PIXEL_TOLERANCE = 0.1  # pixels up to 10 % larger than the trained ones keep the PSF's width in pixels
# measured medians are compared with the trained range widened by these factors: a detection's
# photons fall below the emitters' mean where a blink covers part of a frame
MEASURED_LOW, MEASURED_HIGH = 0.5, 1.5
# ... and the photons of the brightest tenth with the top of it: a model misses spots brighter than
# any it saw (v1 on Picasso's test movie: the five brightest of 30, where the median was in range)
BRIGHTEST = 0.9
FINE_TUNE_HINT = "fine-tune the model on this stack (Fine-tune widget, self-calibrated)"
BUNDLED_NAMED = "the bundled model (the default)"  # how a user picks it, in the widgets and on the command line
CLASSICAL_3D = "method 'classical fit' in the 3-D widget; var-emitter localize --psf on the command line"
CALIBRATION_TOLERANCE = 0.05  # a calibration whose widths differ less than this in the trained z range is the same
# an sCMOS read noise up to this factor above the trained range is close enough (its variance is
# a small part of a pixel's noise on all but the dimmest backgrounds)
READ_NOISE_TOLERANCE = 1.5


@dataclasses.dataclass(frozen=True)
class Envelope:
    """Training ranges: pixel size (nm), PSF sigma (camera px), emitter photons per frame,
    background (photons/px), camera types, sCMOS read noise (e⁻ rms; None where the card states
    none); a 3-D model's astigmatic calibration, or the calibration family a conditioned 3-D
    model was trained on; the stack a fine-tuned model was made for (its name; None for others)."""

    pixel_size_nm: tuple[float, float]
    psf_sigma_px: tuple[float, float]
    photons: tuple[float, float]
    background_photons: tuple[float, float]
    camera_types: tuple[str, ...]
    scmos_read_noise_e: tuple[float, float] | None = None
    calibration: PSF | None = None
    family: CalibrationFamily | None = None
    fine_tuned_on: str | None = None
    single_images: bool = False  # a model with a window of frames also trained on frames alone

    @classmethod
    def from_card(cls, card: dict[str, Any]) -> Envelope | None:
        """The ranges of a model card's training simulation; None if the card states none."""
        simulation = card.get("train_config", {}).get("simulation")
        if not simulation:
            return None
        px = _span(simulation["pixel_size_nm"])
        if simulation.get("psf_sigma_px"):  # drawn in pixels (the v2 envelope)
            sigma_px = _span(simulation["psf_sigma_px"])
        else:
            sigma_nm = _span(simulation["psf_sigma_nm"])
            sigma_px = (sigma_nm[0] / px[1], sigma_nm[1] / px[0])
        emccd = float(simulation.get("emccd_fraction", 0.5))
        types = tuple(t for t, share in (("EMCCD", emccd), ("sCMOS", 1 - emccd)) if share > 0)
        calibration = PSF.from_dict(simulation["psf_calibration"]) if simulation.get("psf_calibration") else None
        family = CalibrationFamily(**simulation["psf_family"]) if simulation.get("psf_family") else None
        read_noise = _span(simulation["scmos_read_noise_e"]) if simulation.get("scmos_read_noise_e") else None
        return cls(px, sigma_px, _span(simulation["photons_mean"]), _span(simulation["background_photons"]), types,
                   read_noise, calibration, family, card.get("fine_tuned_on", {}).get("stack"),
                   float(simulation.get("single_frame_fraction", 0.0)) > 0)

    def in_camera_pixels(self, bin_px: int) -> Envelope:
        """These ranges as they apply to the pixels of a camera whose frames are binned bin_px x bin_px
        in front of the network (predict.canonical): pixels b times smaller, spots b times wider in
        them, b² times less background and b times less read noise per pixel."""
        if bin_px == 1:
            return self
        return dataclasses.replace(
            self, pixel_size_nm=tuple(p / bin_px for p in self.pixel_size_nm),
            psf_sigma_px=tuple(s * bin_px for s in self.psf_sigma_px),
            background_photons=tuple(b / bin_px ** 2 for b in self.background_photons),
            scmos_read_noise_e=(None if self.scmos_read_noise_e is None
                                else tuple(r / bin_px for r in self.scmos_read_noise_e)))

    def stack_warnings(self, stack: str) -> list[str]:
        """A warning when a model fine-tuned on one stack is run on another (by name): its ranges
        are that stack's."""
        if self.fine_tuned_on is None or stack == self.fine_tuned_on:
            return []
        return [f"the model was fine-tuned on {self.fine_tuned_on!r}, not on {stack!r}: it knows that stack's "
                f"PSF, photons and background; for another sample or microscope, use {BUNDLED_NAMED} or "
                f"{FINE_TUNE_HINT}"]

    def psf_warnings(self, psf: PSF) -> list[str]:
        """Warnings when the calibration given is not one a 3-D model knows: outside the family a
        conditioned model was trained on, or, for a model of one calibration, widths more than
        CALIBRATION_TOLERANCE from its calibration's somewhere in the trained z range."""
        if self.family is not None:
            outside = self.family.outside(psf)
            return [f"the PSF calibration lies outside the family the model was trained on ({'; '.join(outside)}): "
                    f"check the calibration, or localise with the classical fit ({CLASSICAL_3D})"
                    ] if outside else []
        if self.calibration is None:
            return []
        z = np.linspace(*self.calibration.z_range_nm, 101)
        differences = [np.abs(given / trained - 1).max()
                       for given, trained in zip(psf.sigmas_nm(z), self.calibration.sigmas_nm(z), strict=True)]
        if max(differences) <= CALIBRATION_TOLERANCE:
            return []
        return [f"the model was trained for another PSF calibration (the widths differ by up to "
                f"{100 * max(differences):.0f} % between z = {z[0]:.0f} and {z[-1]:.0f} nm): train a 3-D model for "
                "yours (docs/3d.md: var-emitter train --psf), or localise with the classical fit "
                f"({CLASSICAL_3D})"]

    def input_warnings(self, camera: Camera, psf: PSF | None = None, psf_sigma_known: bool = False) -> list[str]:
        """Warnings about what a user gives before predicting: the camera, and the PSF
        calibration of a 3-D run."""
        return self.camera_warnings(camera, psf_sigma_known) + (self.psf_warnings(psf) if psf is not None else [])

    def camera_warnings(self, camera: Camera, psf_sigma_known: bool = False) -> list[str]:
        """Warnings about the camera description alone (before predicting). The guess from the
        pixel size that spots are narrower than the model knows is left to the PSF sigma where
        that is given or measured (psf_sigma_known: the run says what it means)."""
        warnings = []
        high = self.pixel_size_nm[1]
        if not psf_sigma_known and camera.pixel_size_nm > high * (1 + PIXEL_TOLERANCE):  # wider spots are binned
            warnings.append(
                f"pixel size {camera.pixel_size_nm:g} nm: the model was trained at {_range(self.pixel_size_nm)} nm "
                f"pixels (PSF sigma {_range(self.psf_sigma_px, '.2g')} px), so spots here are likely narrower in "
                f"pixels than any it saw: check the pixel size, or {FINE_TUNE_HINT}")
        if camera.type not in self.camera_types:
            warnings.append(f"camera type {camera.type}: the model was trained on {' and '.join(self.camera_types)} "
                            f"noise only: check the camera type, or {FINE_TUNE_HINT}")
        elif camera.type == "sCMOS" and self.scmos_read_noise_e is not None:
            read_noise = camera.typical_read_noise_e
            if read_noise > READ_NOISE_TOLERANCE * self.scmos_read_noise_e[1]:
                where = "median over the variance map" if camera.variance_map is not None else "as given"
                warnings.append(
                    f"read noise {read_noise:.2g} e⁻ rms ({where}) is above what the model was trained on "
                    f"({_range(self.scmos_read_noise_e, '.2g')} e⁻): check that it is in electrons, not ADU; "
                    f"if it is right, {FINE_TUNE_HINT}")
        return warnings

    def measured_warnings(self, table: pd.DataFrame, camera: Camera,
                          others: Sequence[tuple[str, Envelope]] = (), bin_px: int = 1) -> list[str]:
        """Warnings about the medians of a prediction's photons and background, and about its
        brightest localisations (BRIGHTEST quantile of the photons) where the median is in range,
        naming the values of `camera` that convert them; `others` (how a user picks another model,
        its envelope): those trained on what is measured are named as what to try. bin_px: the
        run's binning in front of the network, whose pixels the trained background is per."""
        if not len(table):
            return []
        trained_here = self.in_camera_pixels(bin_px)
        others = [(name, envelope.in_camera_pixels(bin_px)) for name, envelope in others]
        gain = "gain map (ADU per e⁻, per pixel)" if camera.gain_map else "gain in e⁻/ADU (not ADU/e⁻)"
        offset = "offset map" if camera.offset_map else "baseline (ADU)"
        em_gain = ", EM gain" if camera.type == "EMCCD" else ""
        warnings = []
        for column, trained, unit, hint in (
                ("photons", trained_here.photons, "photons per localisation",
                 f"check the camera's {gain}{em_gain} and {offset}"),
                ("background", trained_here.background_photons, "background photons/px",
                 f"check the camera's {offset} and {gain}")):
            if column not in table:
                continue
            median, bright = (float(q) for q in np.quantile(table[column], [0.5, BRIGHTEST]))
            if not _within(trained, median):
                side = "below" if median < trained[0] * MEASURED_LOW else "above"
                warnings.append(f"median {_rounded(median)} {unit} is {side} what the model was trained on "
                                f"({_range(trained)}): {hint}; if they are right, "
                                + _remedy(others, column, unit, lambda span: _within(span, median)))
            elif column == "photons" and bright > trained[1] * MEASURED_HIGH:
                warnings.append(f"a tenth of the localisations carry more than {bright:,.0f} photons, above what the "
                                f"model was trained on ({_range(trained)}): it may miss spots as bright without a "
                                f"sign; {hint}; if they are right, "
                                + _remedy(others, column, unit, lambda span: bright <= span[1] * MEASURED_HIGH))
        return warnings


def bundled_alternatives(weights: Path, in_widget: bool = False) -> list[tuple[str, Envelope]]:
    """The other bundled 2-D model than `weights` (one of the two), as a user picks it (in the
    Predict widget, else on the command line), with its training ranges; none for any other model."""
    if Path(weights).resolve() not in {BUNDLED, BUNDLED_FAST}:
        return []
    fast = "the fast model ('fast model' under model above)" if in_widget else "the fast model (--model fast)"
    other, name = ((BUNDLED_FAST, fast)
                   if Path(weights).resolve() == BUNDLED else (BUNDLED, BUNDLED_NAMED))
    envelope = Envelope.from_card(read_card(other)[1])
    return [(name, envelope)] if envelope is not None else []


def _within(trained: tuple[float, float], measured: float) -> bool:
    """Whether a measured median lies in a trained range, widened by MEASURED_LOW and MEASURED_HIGH."""
    return trained[0] * MEASURED_LOW <= measured <= trained[1] * MEASURED_HIGH


def _remedy(others: Sequence[tuple[str, Envelope]], column: str, unit: str, covers) -> str:
    """What to do about a measured column outside the model's range: the other models trained on it
    (`covers` of their range), then the fine-tune."""
    spans = {"photons": lambda e: e.photons, "background": lambda e: e.background_photons}[column]
    tried = [f"{name}, trained on {_range(spans(envelope))} {unit}" for name, envelope in others
             if covers(spans(envelope))]
    return "".join(f"try {name}, or " for name in tried) + FINE_TUNE_HINT


def _span(value) -> tuple[float, float]:
    """A scalar or [low, high] from a card -> (low, high)."""
    values = np.atleast_1d(np.asarray(value, dtype=float))
    return float(values.min()), float(values.max())


def _range(span: tuple[float, float], fmt: str | None = None) -> str:
    """low–high (one value where they are equal) in `fmt`, else rounded for reading (_rounded)."""
    low, high = (f"{value:{fmt}}" if fmt else _rounded(value) for value in span)
    return low if low == high else f"{low}–{high}"


def _rounded(value: float) -> str:
    """Whole numbers from 100 up (with thousands separators), three significant digits below."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
