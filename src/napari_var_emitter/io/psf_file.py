"""PSF calibration files (JSON): the astigmatic PSF that `calibrate-psf` fits, read by
`simulate`, `localize`, `predict` and the widgets (docs/formats.md).

    {"format": "napari-var-emitter PSF calibration", "version": 1,
     "units": "...", "psf": {PSF.to_dict(): model, sigma_nm, astigmatism,
                              curve_x / curve_y {sigma0_nm, focus_nm, depth_nm, cubic, quartic},
                              z_range_nm},
     "pixel_size_nm": 100.0, "bead_stack": {what it was fitted to}}
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..psf import PSF
from .atomic import write_text_atomic

PIXEL_SIZE_TOLERANCE = 0.02  # pixel sizes closer than this (relative) are the same camera's
FORMAT = "napari-var-emitter PSF calibration"
VERSION = 1
WRITTEN_BY = "one is written by the 3-D widget's 'Save calibration' after 'Calibrate', or by var-emitter calibrate-psf"
UNITS = ("nm throughout; z = 0 midway between the x and y foci, z growing with the bead stack's slice index; "
         "sigma(z) = sigma0_nm * sqrt(1 + u^2 + cubic*u^3 + quartic*u^4), u = (z - focus_nm) / depth_nm")


def write_psf_file(path: str | os.PathLike, psf: PSF, pixel_size_nm: float, bead_stack: dict[str, Any]) -> None:
    """Write a calibration atomically; `bead_stack` says what it was fitted to (JSON values)."""
    document = {"format": FORMAT, "version": VERSION, "units": UNITS, "psf": psf.to_dict(),
                "pixel_size_nm": float(pixel_size_nm), "bead_stack": bead_stack}
    write_text_atomic(path, json.dumps(document, indent=2) + "\n")


def read_psf_file(path: str | os.PathLike) -> tuple[PSF, float]:
    """(astigmatic PSF, pixel size in nm of the camera it was calibrated on); InputError naming
    the file for anything else."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: PSF calibration file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(f"{path}: not a PSF calibration file (not JSON); {WRITTEN_BY}") from None
    except OSError as exc:
        raise InputError(f"{path}: not a readable PSF calibration file ({exc.strerror or exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise InputError(f"{path}: not a PSF calibration file; {WRITTEN_BY}")
    if document.get("version") != VERSION:
        raise InputError(f"{path}: PSF calibration version {document.get('version')!r}; this version reads {VERSION}")
    try:
        psf = PSF.from_dict(document["psf"])
        pixel_size_nm = document["pixel_size_nm"]
    except KeyError as exc:
        raise InputError(f"{path}: damaged PSF calibration: it has no {exc.args[0]!r}; {WRITTEN_BY}") from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: damaged PSF calibration: a value it cannot take ({exc}); {WRITTEN_BY}") from None
    if isinstance(pixel_size_nm, bool) or not isinstance(pixel_size_nm, int | float):
        raise InputError(f"{path}: damaged PSF calibration: pixel_size_nm {pixel_size_nm!r} is no number (nm); "
                         f"{WRITTEN_BY}")
    if not psf.astigmatism:
        raise InputError(f"{path}: the calibration is not astigmatic; 2-D localisation needs no PSF file")
    return psf, float(pixel_size_nm)


def pixel_size_warning(calibrated_nm: float | None, camera_nm: float) -> str | None:
    """A warning when a calibration was measured on pixels of another size than the camera's
    (None when they agree or the calibration's is unknown): its widths are in nm and apply to any
    camera behind the same optics, but a wrong pixel size on either stack scales them and z."""
    if calibrated_nm is None or abs(calibrated_nm / camera_nm - 1) <= PIXEL_SIZE_TOLERANCE:
        return None
    return (f"the PSF calibration was measured on {calibrated_nm:g} nm pixels and this camera has {camera_nm:g} nm: "
            "its widths are in nm and are used as they are; if both stacks come from the same microscope, check "
            "the pixel size of each (a wrong one scales every width, and so z)")
