"""Picasso localisations (HDF5, a `locs` table): frame 0-based; x, y, sx, sy, lpx, lpy in camera
pixels with x = 0 at the centre of pixel 0 (so x_nm = (x + 0.5) * px); photons and bg in
photons. The pixel size comes from the .yaml Picasso writes beside the file ("Pixelsize", nm),
or from the caller."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from ..errors import InputError
from .picasso_movie import picasso_camera, picasso_info
from .table import validate_table


def is_picasso_h5(path: str | os.PathLike) -> bool:
    with h5py.File(path, "r") as f:
        locs = f.get("locs")
        return isinstance(locs, h5py.Dataset) and locs.dtype.names is not None and \
            {"frame", "x", "y"} <= set(locs.dtype.names)


def read_picasso_h5(path: str | os.PathLike, pixel_size_nm: float | None = None) -> pd.DataFrame:
    """Our table from a Picasso HDF5; `pixel_size_nm` wins over the yaml's."""
    path = Path(path)
    px = pixel_size_nm or _yaml_pixel_size(path.with_suffix(".yaml"))
    if px is None:
        raise InputError(f"{path}: Picasso positions are in pixels and {path.with_suffix('.yaml').name} (which "
                         "states the pixel size) is not beside it: give the pixel size in nm")
    with h5py.File(path, "r") as f:
        locs = f["locs"][()]
    names = locs.dtype.names
    table = pd.DataFrame({"frame": locs["frame"].astype(np.int64), "x_nm": (locs["x"] + 0.5) * px,
                          "y_nm": (locs["y"] + 0.5) * px})
    if "photons" in names:
        table["photons"] = locs["photons"]
    if "bg" in names:
        table["background"] = locs["bg"]
    if {"sx", "sy"} <= set(names):
        table["sigma_nm"] = np.sqrt(locs["sx"] * locs["sy"]) * px
    if {"lpx", "lpy"} <= set(names):
        table["uncertainty_nm"] = np.sqrt((locs["lpx"] ** 2 + locs["lpy"] ** 2) / 2) * px
    return validate_table(table, str(path))


def _yaml_pixel_size(path: Path) -> float | None:
    """The pixel size (nm) Picasso's yaml states, if it does."""
    return picasso_camera(picasso_info(path)).get("pixel_size_nm")
