"""Localisation tables as CSV in ThunderSTORM's layout (frames 1-based, positions in nm)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from ..errors import InputError
from .atomic import atomic_path
from .table import validate_table

# internal column -> ThunderSTORM header, in the order they are written
HEADERS = {
    "id": "id",
    "frame": "frame",
    "x_nm": "x [nm]",
    "y_nm": "y [nm]",
    "z_nm": "z [nm]",
    "sigma_nm": "sigma [nm]",
    "photons": "intensity [photon]",
    "background": "offset [photon]",
    "uncertainty_nm": "uncertainty [nm]",
    # the Cramér–Rao bound of x at the MLE fit (the network's uncertainty where fitted = 0)
    "uncertainty_x_nm": "uncertainty_x [nm]",
    "uncertainty_y_nm": "uncertainty_y [nm]",
    "uncertainty_z_nm": "uncertainty_z [nm]",  # 3-D (astigmatic) localisation: the bound of z
    "probability": "probability",
    "fitted": "fitted",  # 1: position, photons, background and uncertainties from the MLE refinement; 0: the network's
    "significance": "significance [sd]",  # of a spot at the position against background only (fit/background_test.py)
    "last_frame": "last frame",  # merged blinks (analysis/merge.py): frames first..last, 1-based like frame
    "n_merged": "detections",
}
FRAME_COLUMNS = ("frame", "last_frame")  # 0-based inside, 1-based in the file
_COLUMNS = {header: column for column, header in HEADERS.items()}


def write_localizations_csv(path: str | os.PathLike, table: pd.DataFrame) -> None:
    """Write a localisation table (0-based frames inside) as ThunderSTORM CSV, atomically.

    Columns the table lacks are left out; `id` is numbered 1..n when absent.
    """
    write_localizations_csv_stream(path, [table])


def write_localizations_csv_stream(path: str | os.PathLike, tables: Iterable[pd.DataFrame]) -> int:
    """Write tables one after another into one ThunderSTORM CSV (atomically: nothing appears
    at `path` until all are written), numbering `id` on across them when absent; only one
    table is in memory at a time. Every non-empty table must have the first one's columns.
    Returns the number of rows."""
    rows, columns = 0, None
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        for table in tables:
            if columns is None and len(table.columns):  # the first table with columns gives the header
                columns = list(table.columns)
                header = _thunderstorm(validate_table(table.iloc[:0], "localisation table"), 0).columns
                f.write(",".join(f'"{h}"' for h in header) + "\n")
            if not len(table):
                continue
            if list(table.columns) != columns:
                raise ValueError(f"tables to stream differ in columns: {columns} vs {list(table.columns)}")
            _thunderstorm(validate_table(table, "localisation table"), rows).to_csv(
                f, index=False, header=False, float_format="%.7g")
            rows += len(table)
    return rows


def _thunderstorm(table: pd.DataFrame, first_id: int) -> pd.DataFrame:
    """The ThunderSTORM columns of a validated table: 1-based frames, ids from first_id + 1."""
    out = pd.DataFrame({
        header: table[column] for column, header in HEADERS.items() if column in table.columns
    })
    for column in FRAME_COLUMNS:
        if column in table:
            out[HEADERS[column]] = table[column] + 1
    if "id" not in out.columns:
        out.insert(0, "id", range(first_id + 1, first_id + len(table) + 1))
    return out


def read_localizations_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ThunderSTORM-layout CSV into the internal table (0-based frames)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        raw = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable CSV ({exc})") from exc
    pixel_units = [h for h in raw.columns if h.strip() in ("x [px]", "y [px]")]
    if pixel_units:
        raise InputError(f"{path}: positions are in pixels ({pixel_units}); export them in nm")
    renamed = raw.rename(columns=lambda header: _COLUMNS.get(header.strip(), header))
    table = validate_table(renamed[[c for c in HEADERS if c in renamed.columns]], str(path))
    for column in FRAME_COLUMNS:
        if column in table:
            if (table[column] < 1).any():
                raise InputError(f"{path}: ThunderSTORM frames are 1-based; found 0 in {HEADERS[column]!r}")
            table[column] -= 1
    return table
