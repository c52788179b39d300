"""Localisation tables as HDF5, appended table by table (long stacks).

Layout (schema version 1):
  /localizations/<column>   one 1-D dataset per column of the internal table (io/table.py):
                            frame (0-based, unlike the CSV), x_nm, y_nm, photons, ..., and id (1..n)
  root attributes           schema, schema_version
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import h5py
import numpy as np
import pandas as pd

from ..errors import InputError
from .atomic import atomic_path
from .h5_schema import has_schema, open_h5
from .table import validate_table

SCHEMA = "napari-var-emitter/localizations"
SCHEMA_VERSION = 1


def write_localizations_h5_stream(path: str | os.PathLike, tables: Iterable[pd.DataFrame]) -> int:
    """Append tables one after another to one HDF5 file (atomically: nothing appears at `path`
    until all are written), numbering `id` on across them when absent; only one table is in
    memory at a time. Every non-empty table must have the first one's columns. Returns the
    number of rows."""
    rows, columns = 0, None
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update({"schema": SCHEMA, "schema_version": SCHEMA_VERSION})
        group = f.create_group("localizations", track_order=True)  # columns keep their order
        for table in tables:
            if columns is None and len(table.columns):
                columns = list(table.columns)
                first = validate_table(table.iloc[:0], "localisation table")
                for column in [*columns, *(["id"] if "id" not in columns else [])]:
                    dtype = np.int64 if column == "id" else first[column].dtype
                    group.create_dataset(column, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(65536,),
                                         compression="gzip")
            if not len(table):
                continue
            if list(table.columns) != columns:
                raise ValueError(f"tables to stream differ in columns: {columns} vs {list(table.columns)}")
            table = validate_table(table, "localisation table")
            if "id" not in columns:
                table["id"] = np.arange(rows + 1, rows + len(table) + 1)
            for column, dataset in group.items():
                dataset.resize((rows + len(table),))
                dataset[rows:] = table[column].to_numpy()
            rows += len(table)
    return rows


def is_localizations_h5(path: str | os.PathLike) -> bool:
    """Whether `path` is an HDF5 file with the localisations schema."""
    return has_schema(path, SCHEMA)


def read_localizations_h5(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate a localisations HDF5 file; every problem is an InputError naming it."""
    with open_h5(path, SCHEMA, SCHEMA_VERSION, "a localisations file") as f:
        if "localizations" not in f:
            raise InputError(f"{path}: no /localizations group")
        group = f["localizations"]
        shapes = {name: dataset.shape for name, dataset in group.items()}
        if len(set(shapes.values())) > 1 or any(len(s) != 1 for s in shapes.values()):
            raise InputError(f"{path}: columns must be 1-D and of equal length, got {shapes}")
        table = pd.DataFrame({name: dataset[()] for name, dataset in group.items()})
    return validate_table(table, str(path))
