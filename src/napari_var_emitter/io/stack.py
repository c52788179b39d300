"""Open the stacks microscopes write, whichever the format, as one lazy (T, Y, X) ADU Stack:
TIFF / OME-TIFF (Micro-Manager's OME-TIFF datasets split over several files too: io.tiff),
Picasso's .raw with its .yaml (io.picasso_movie), Nikon ND2 (io.nd2_stack). A Picasso .yaml
beside a TIFF adds the camera values it states that the TIFF does not."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError
from .nd2_stack import read_nd2
from .picasso_movie import picasso_camera, picasso_info, read_picasso_raw
from .tiff import Stack, read_stack

STACK_SUFFIXES = (".tif", ".tiff", ".raw", ".nd2")


def open_stack(path: str | os.PathLike) -> Stack:
    """The stack at `path`, by its suffix (STACK_SUFFIXES); InputError for anything else."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if suffix in (".tif", ".tiff"):
        stack = read_stack(path)
        beside = picasso_camera(picasso_info(path.with_suffix(".yaml")))
        return Stack(stack.path, stack.frames, {**beside, **stack.camera_metadata})
    if suffix == ".raw":
        return Stack(path, *read_picasso_raw(path))
    if suffix == ".nd2":
        return Stack(path, *read_nd2(path))
    raise InputError(f"{path}: not a stack this program opens (it opens {', '.join(STACK_SUFFIXES)})")
