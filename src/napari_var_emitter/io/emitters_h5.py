"""emitters.h5: ground-truth emitters of one simulated (or labelled) stack.

Layout (schema version 1):
  /emitters/<column>    one 1-D dataset per column: frame (0-based), x_nm, y_nm, z_nm,
                        photons, id, background (photons / px / frame)
  root attributes       schema, schema_version, pixel_size_nm, frame_shape (H, W),
                        n_frames, camera (JSON), psf (JSON)
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import h5py
import numpy as np
import pandas as pd

from ..errors import InputError
from .atomic import atomic_path
from .camera import Camera
from .h5_schema import has_schema, open_h5
from .table import validate_table

SCHEMA = "napari-var-emitter/emitters"
SCHEMA_VERSION = 1
COLUMNS = ("frame", "x_nm", "y_nm", "z_nm", "photons", "id", "background")


@dataclasses.dataclass
class GroundTruth:
    """Emitters of a stack with the acquisition they belong to."""

    emitters: pd.DataFrame
    camera: Camera
    psf: dict[str, Any]
    frame_shape: tuple[int, int]
    n_frames: int


def write_emitters_h5(path: str | os.PathLike, truth: GroundTruth) -> None:
    """Write ground truth atomically."""
    missing = [c for c in COLUMNS if c not in truth.emitters.columns]
    if missing:
        raise InputError(f"ground truth lacks column(s) {missing}")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs.update({
                "schema": SCHEMA,
                "schema_version": SCHEMA_VERSION,
                "pixel_size_nm": truth.camera.pixel_size_nm,
                "frame_shape": np.asarray(truth.frame_shape, dtype=np.int64),
                "n_frames": truth.n_frames,
                "camera": json.dumps(truth.camera.to_dict()),
                "psf": json.dumps(truth.psf),
            })
            group = f.create_group("emitters")
            for column in COLUMNS:
                group.create_dataset(column, data=truth.emitters[column].to_numpy())


def read_emitters_h5(path: str | os.PathLike) -> GroundTruth:
    """Read and validate an emitters.h5; every problem is an InputError naming it."""
    with open_h5(path, SCHEMA, SCHEMA_VERSION, "an emitters file") as f:
        attrs = dict(f.attrs)
        missing_attrs = [a for a in ("camera", "psf", "frame_shape", "n_frames") if a not in attrs]
        if missing_attrs or "emitters" not in f:
            raise InputError(f"{path}: missing {missing_attrs or ['/emitters group']}")
        group = f["emitters"]
        missing = [c for c in COLUMNS if c not in group]
        if missing:
            raise InputError(f"{path}: /emitters lacks column(s) {missing}")
        lengths = {c: group[c].shape for c in COLUMNS}
        if len(set(lengths.values())) != 1 or len(next(iter(lengths.values()))) != 1:
            raise InputError(f"{path}: columns must be 1-D and of equal length, got {lengths}")
        table = pd.DataFrame({c: group[c][()] for c in COLUMNS})
    emitters = validate_table(table, str(path))
    n_frames = int(attrs["n_frames"])
    if len(emitters) and emitters["frame"].max() >= n_frames:
        raise InputError(f"{path}: frame index {emitters['frame'].max()} >= n_frames {n_frames}")
    return GroundTruth(
        emitters=emitters,
        camera=Camera.from_dict(json.loads(attrs["camera"])),
        psf=json.loads(attrs["psf"]),
        frame_shape=tuple(int(v) for v in attrs["frame_shape"]),
        n_frames=n_frames,
    )


def is_emitters_h5(path: str | os.PathLike) -> bool:
    """Whether `path` is an HDF5 file with the emitters schema."""
    return has_schema(path, SCHEMA)
