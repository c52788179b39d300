"""Localisation files by extension: .h5 / .hdf5 (io/localizations_h5.py), anything else
ThunderSTORM CSV (io/localizations_csv.py)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from .localizations_csv import read_localizations_csv, write_localizations_csv_stream
from .localizations_h5 import read_localizations_h5, write_localizations_h5_stream

H5_SUFFIXES = (".h5", ".hdf5")


def _is_h5(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in H5_SUFFIXES


def write_localizations_stream(path: str | os.PathLike, tables: Iterable[pd.DataFrame]) -> int:
    """Write tables one after another into one file (atomically), one in memory at a time."""
    write = write_localizations_h5_stream if _is_h5(path) else write_localizations_csv_stream
    return write(path, tables)


def write_localizations(path: str | os.PathLike, table: pd.DataFrame) -> None:
    write_localizations_stream(path, [table])


def read_localizations(path: str | os.PathLike) -> pd.DataFrame:
    return read_localizations_h5(path) if _is_h5(path) else read_localizations_csv(path)
