"""Picasso's movies: a .raw file of frames with the .yaml Picasso writes beside it ("Byte Order",
"Data Type", "Frames", "Height", "Width"), and the camera values that .yaml states beside any of
its files (a TIFF movie, a localisation HDF5): "Pixelsize" (nm), "Baseline" (ADU),
"Sensitivity" (e⁻/ADU), "Gain" (EM gain), "Qe"; keys may carry a prefix ("Camera.Pixelsize")."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import yaml

from ..errors import InputError

# Picasso's key (the last part after a dot, lower case) -> our camera field
_CAMERA_KEYS = {"pixelsize": "pixel_size_nm", "baseline": "baseline_adu", "sensitivity": "e_per_adu",
                "gain": "em_gain", "qe": "qe"}


def picasso_info(yaml_path: str | os.PathLike) -> dict[str, Any]:
    """Every key of every document of a Picasso .yaml ({} when there is none); later documents
    (Picasso appends one per processing step) win."""
    path = Path(yaml_path)
    if not path.is_file():
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            documents = list(yaml.safe_load_all(f))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: not a readable Picasso .yaml ({exc})") from exc
    info: dict[str, Any] = {}
    for document in documents:
        if isinstance(document, dict):
            info.update(document)
    return info


def picasso_camera(info: dict[str, Any]) -> dict[str, Any]:
    """The camera fields a Picasso .yaml states (the first key of each kind, prefixed or not)."""
    found: dict[str, Any] = {}
    for key, value in info.items():
        field = _CAMERA_KEYS.get(str(key).split(".")[-1].lower())
        if field is not None and field not in found:
            try:
                found[field] = float(value)
            except (TypeError, ValueError):
                continue
    return found


def read_picasso_raw(path: str | os.PathLike) -> tuple[da.Array, dict[str, Any]]:
    """(T, Y, X) frames of a Picasso .raw (memory-mapped, lazy) and the camera fields its .yaml states."""
    path = Path(path)
    yaml_path = path.with_suffix(".yaml")
    info = picasso_info(yaml_path)
    needed = ("Frames", "Height", "Width", "Data Type")
    if not all(key in info for key in needed):
        raise InputError(f"{path}: a Picasso .raw needs {yaml_path.name} beside it, stating "
                         f"{', '.join(needed)} (missing: {', '.join(k for k in needed if k not in info)})")
    try:
        dtype = np.dtype(str(info["Data Type"])).newbyteorder("<" if info.get("Byte Order", "<") == "<" else ">")
        shape = (int(info["Frames"]), int(info["Height"]), int(info["Width"]))
    except (TypeError, ValueError) as exc:
        raise InputError(f"{yaml_path}: unreadable movie layout ({exc})") from exc
    expected, size = int(np.prod(shape)) * dtype.itemsize, path.stat().st_size
    if size != expected:
        raise InputError(f"{path}: {size:,} bytes, but {yaml_path.name} states {shape[0]} frames of "
                         f"{shape[2]}x{shape[1]} {dtype.name} ({expected:,} bytes): truncated or another movie")
    frames = np.memmap(path, dtype=dtype, mode="r", shape=shape)
    return da.from_array(frames, chunks=(1, *shape[1:])), picasso_camera(info)
