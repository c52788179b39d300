"""Localisation files. Written by extension: .h5 / .hdf5 (io/localizations_h5.py), anything
else ThunderSTORM CSV (io/localizations_csv.py). Read in the layouts users have, recognised by
their contents: ours and ThunderSTORM CSV, SMLM challenge CSV (io/challenge_csv.py), our HDF5,
Picasso HDF5 (io/picasso_h5.py) and emitters.h5 ground truth."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import h5py
import pandas as pd

from ..errors import InputError
from .challenge_csv import is_challenge_table, read_challenge_csv
from .emitters_h5 import is_emitters_h5, read_emitters_h5
from .picasso_h5 import is_picasso_h5, read_picasso_h5
from .localizations_csv import read_localizations_csv, write_localizations_csv_stream
from .localizations_h5 import is_localizations_h5, read_localizations_h5, write_localizations_h5_stream

H5_SUFFIXES = (".h5", ".hdf5")


def _is_h5(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in H5_SUFFIXES


def write_localizations_stream(path: str | os.PathLike, tables: Iterable[pd.DataFrame]) -> int:
    """Write tables one after another into one file (atomically), one in memory at a time."""
    write = write_localizations_h5_stream if _is_h5(path) else write_localizations_csv_stream
    return write(path, tables)


def write_localizations(path: str | os.PathLike, table: pd.DataFrame) -> None:
    write_localizations_stream(path, [table])


LAYOUTS = ("ours / ThunderSTORM CSV (frame, x [nm], y [nm], ...)", "SMLM challenge CSV (frame, xnano, ynano, ...)",
           "NAIRR-SMLM truth CSV (Frame, x (nm), y (nm), ...)",
           "our HDF5 (localisations saved as .h5)", "Picasso HDF5 (locs: frame, x, y in pixels)",
           "simulated ground truth (emitters.h5)")


def read_localizations(path: str | os.PathLike, pixel_size_nm: float | None = None) -> pd.DataFrame:
    """Our table (0-based frames, nm) from a file in any layout above; a file that fits none is
    an error naming the columns (or datasets) found. `pixel_size_nm` is for tables in pixels
    (Picasso) whose pixel size the file does not state."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if _is_h5(path):
        return _read_h5(path, pixel_size_nm)
    if path.suffix.lower() in (".tif", ".tiff", ".nd2", ".czi"):
        raise InputError(f"{path}: an image stack, not a table of localisations: predict on it first "
                         "(var-emitter predict STACK --out LOCS.csv), then give LOCS.csv")
    try:
        raw = pd.read_csv(path, nrows=5)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable CSV ({exc})") from exc
    headers = {str(c).strip() for c in raw.columns}
    if {"x [nm]", "y [nm]"} <= headers or {"x [px]", "y [px]"} & headers:
        return read_localizations_csv(path)
    if is_challenge_table(raw):
        return read_challenge_csv(path)
    raise InputError(f"{path}: columns {sorted(headers)} fit none of the layouts read here: " + "; ".join(LAYOUTS))


def _read_h5(path: Path, pixel_size_nm: float | None) -> pd.DataFrame:
    try:
        if is_localizations_h5(path):
            return read_localizations_h5(path)
        if is_picasso_h5(path):
            return read_picasso_h5(path, pixel_size_nm)
        if is_emitters_h5(path):
            return read_emitters_h5(path).emitters
        with h5py.File(path, "r") as f:
            found = sorted(f.keys())
    except OSError as exc:
        raise InputError(f"{path}: not a readable HDF5 file ({exc})") from exc
    raise InputError(f"{path}: datasets {found} fit none of the layouts read here: " + "; ".join(LAYOUTS))
