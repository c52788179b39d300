"""SMLM challenge localisation and truth tables (CSV): frames 1-based, positions in nm from the
image corner (pixel (0, 0) covers [0, px), our convention); either a header naming frame,
xnano, ynano (and znano, intensity), or the 2016 challenge's header-less activations layout:
index, frame, x, y, z, intensity, or NAIRR-SMLM's ground truth (Frame, Emitter, x (nm), y (nm)
(, z (nm)), Intensity (photons), ...)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ..errors import InputError
from .table import validate_table

NAMED = {"frame": "frame", "xnano": "x_nm", "ynano": "y_nm", "znano": "z_nm", "intensity": "photons",
         # NAIRR-SMLM's truth
         "emitter": "id", "x (nm)": "x_nm", "y (nm)": "y_nm", "z (nm)": "z_nm", "intensity (photons)": "photons"}
ACTIVATIONS = ("id", "frame", "x_nm", "y_nm", "z_nm", "photons")


def is_challenge_table(raw: pd.DataFrame) -> bool:
    """A table read with its first row as header: named challenge columns, or six numbers
    (header-less activations)."""
    names = {str(c).strip().lower() for c in raw.columns}
    return ({"frame", "xnano", "ynano"} <= names or {"frame", "x (nm)", "y (nm)"} <= names
            or (len(raw.columns) == 6 and all(_number(c) for c in raw.columns)))


def read_challenge_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Our table (0-based frames) from a challenge CSV (with or without header)."""
    raw = pd.read_csv(path)
    if all(_number(c) for c in raw.columns):
        table = pd.read_csv(path, header=None)
        table.columns = ACTIVATIONS
    else:
        table = raw.rename(columns=lambda c: NAMED.get(str(c).strip().lower(), str(c).strip()))
        table = table[[c for c in dict.fromkeys(NAMED.values()) if c in table.columns]]
    table = validate_table(table, str(path))
    if (table["frame"] < 1).any():
        raise InputError(f"{path}: SMLM challenge frames are 1-based; found frame 0")
    table["frame"] -= 1
    return table


def _number(text) -> bool:
    try:
        return bool(np.isfinite(float(text)))
    except ValueError:
        return False
