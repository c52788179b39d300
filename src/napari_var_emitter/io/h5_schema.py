"""Opening our HDF5 files: the file must be HDF5, carry the expected schema attribute and a
schema_version this program reads; anything else is an InputError naming the problem."""

from __future__ import annotations

import os
from pathlib import Path

import h5py

from ..errors import InputError


def open_h5(path: str | os.PathLike, schema: str, version: int, what: str) -> h5py.File:
    """The file, open for reading (close it, e.g. with `with`); `what` names the kind of file
    in the error message ("an emitters file")."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"{path}: not a readable HDF5 file ({exc})") from exc
    found, found_version = f.attrs.get("schema"), int(f.attrs.get("schema_version", -1))
    problem = (f"not {what} (schema attribute {found!r})" if found != schema else
               f"schema version {found_version} is newer than this program reads ({version}); update "
               "napari-var-emitter" if found_version > version else None)
    if problem:
        f.close()
        raise InputError(f"{path}: {problem}")
    return f


def has_schema(path: str | os.PathLike, schema: str) -> bool:
    """Whether `path` is an HDF5 file whose schema attribute is `schema` (no error otherwise)."""
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("schema") == schema
    except OSError:
        return False
