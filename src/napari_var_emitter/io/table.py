"""The in-memory localisation table: a pandas DataFrame with these column names.

frame is 0-based; positions are nm in the frame's coordinate system (pixel (0, 0) covers
[0, px) x [0, px), x along columns); photons and background are photons (per emitter per
frame, and per pixel per frame).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InputError

INTEGER_COLUMNS = ("frame", "id", "last_frame", "n_merged", "fitted")
FLOAT_COLUMNS = ("x_nm", "y_nm", "z_nm", "photons", "background", "sigma_nm", "uncertainty_nm", "uncertainty_x_nm",
                 "uncertainty_y_nm", "uncertainty_z_nm", "probability", "significance")
REQUIRED_COLUMNS = ("frame", "x_nm", "y_nm")


def validate_table(table: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check required columns, finite values and frame >= 0; return it with canonical dtypes."""
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"{source}: missing column(s) {missing}")
    table = table.copy()
    for column in table.columns:
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise InputError(
                f"{source}: column {column!r} has {bad.size} missing/NaN/non-numeric value(s), "
                f"first at row {bad[0]}"
            )
        if column in INTEGER_COLUMNS:
            if np.any(values != np.round(values)):
                raise InputError(f"{source}: column {column!r} must hold whole numbers")
            table[column] = values.astype(np.int64)
        else:
            table[column] = values
    if (table["frame"] < 0).any():
        raise InputError(f"{source}: negative frame index")
    return table.reset_index(drop=True)
