"""What every analysis step asks of its localisation table before it starts, with the error
a user sees when the table falls short."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InputError


def check_table(table: pd.DataFrame, columns: tuple[str, ...], step: str, min_rows: int = 1,
                min_frames: int = 1) -> None:
    """Raise InputError unless `table` has `columns`, all finite, and at least `min_rows` rows
    spread over at least `min_frames` distinct frames."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(f"{step}: the table has no column(s) {missing} (it has {list(table.columns)})")
    for column in columns:
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(np.float64)
        if not np.isfinite(values).all():
            raise InputError(f"{step}: column {column!r} has missing/NaN values")
    if len(table) < min_rows:
        raise InputError(f"{step}: needs at least {min_rows} localisation(s); the table has {len(table)}")
    n_frames = table["frame"].nunique() if "frame" in table else 0
    if n_frames < min_frames:
        raise InputError(f"{step}: needs localisations in at least {min_frames} frames; the table has {n_frames}")


DEPTH_COLUMNS = ("z_nm", "uncertainty_z_nm")  # shown and summarised for 3-D tables only (has_z)


def has_z(table: pd.DataFrame) -> bool:
    """Whether a table is 3-D: a z_nm column that varies (2-D truth has z = 0)."""
    return "z_nm" in table and len(table) > 0 and np.ptp(table["z_nm"]) > 0
