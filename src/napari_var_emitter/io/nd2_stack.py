"""Nikon ND2 stacks through the `nd2` package (optional: `pip install nd2`): frames lazily, the pixel
size from the file's calibration. The axis rule is the TIFF reader's (io.tiff)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dask.array as da

from ..errors import InputError


def read_nd2(path: str | os.PathLike) -> tuple[da.Array, dict[str, Any]]:
    """(T, Y, X) frames of an ND2 file (lazy) and the camera fields it states (the pixel size)."""
    from .tiff import as_frames

    path = Path(path)
    try:
        import nd2
    except ImportError as exc:
        raise InputError(f"{path}: opening ND2 files needs the nd2 package: pip install nd2") from exc
    try:
        handle = nd2.ND2File(path)
        array = handle.to_dask()
        axes = "".join(handle.sizes)
        pixel_um = handle.voxel_size().x
    except Exception as exc:  # the nd2 package raises its own error types for damaged files
        raise InputError(f"{path}: not a readable ND2 file ({type(exc).__name__}: {exc})") from exc
    camera = {"pixel_size_nm": float(pixel_um) * 1000.0} if pixel_um and pixel_um > 0 else {}
    return as_frames(array, axes, tuple(array.shape), path), camera
