"""napari readers: camera stacks (lazy; TIFF / OME-TIFF, Micro-Manager's multi-file OME-TIFF,
Picasso .raw + .yaml, ND2: io.stack); emitters.h5, and localisation tables (ours, ThunderSTORM,
SMLM challenge CSV, Picasso HDF5) as Points layers."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..io.emitters_h5 import is_emitters_h5, read_emitters_h5
from ..io.localizations import read_localizations
from ..io.stack import STACK_SUFFIXES, open_stack
from ..io.tiff import read_spread
from .layers import MARKER_PX, contrast_limits, image_placement, nm_points_layer
from .preferences import prefer_ours

LOCALISATION_MARKER_NM = 250.0
CONTRAST_FRAMES = 16  # frames spread through a stack that its display contrast is set from


def get_reader(path):
    """napari calls this with a path (or list); returns a reader for the files we know."""
    if isinstance(path, list):
        return None if len(path) != 1 else get_reader(path[0])
    name = str(path).lower()
    if name.endswith(".raw"):  # Picasso's, with its .yaml beside it; other raw files are not ours
        return read_stack_layer if Path(path).with_suffix(".yaml").is_file() else None
    if name.endswith(STACK_SUFFIXES):
        return read_stack_layer
    if name.endswith((".h5", ".hdf5")):
        return read_h5
    if name.endswith(".csv"):
        return read_csv
    return None


def read_stack_layer(path) -> list[tuple]:
    """A (T, Y, X) ADU stack, lazy; scale/translate in nm when the file gives a pixel size;
    the camera fields the file states go into metadata["camera"]. TIFFs open with this reader
    from now on (preferences.prefer_ours)."""
    prefer_ours()
    path = _one(path)
    stack = open_stack(path)
    pixel_size = stack.camera_metadata.get("pixel_size_nm")
    # contrast from frames across the stack, not the first alone (a movie's first frames may hold no
    # spot: trying the plugin, Picasso's test movie then showed every spot as a saturated block)
    shown = contrast_limits(read_spread(stack.frames, CONTRAST_FRAMES))
    kwargs = {"name": Path(path).name, "metadata": {"camera": dict(stack.camera_metadata), "path": str(path)},
              "contrast_limits": shown, **image_placement(pixel_size)}
    return [(stack.frames, kwargs, "image")]


def read_h5(path) -> list[tuple]:
    """Ground truth (emitters.h5), or localisations (ours, Picasso's) as Points in nm world
    coordinates (frame, y, x)."""
    path = _one(path)
    if is_emitters_h5(path):
        truth = read_emitters_h5(path)
        return [nm_points_layer(truth.emitters, f"{Path(path).stem} truth", "truth",
                                MARKER_PX * truth.camera.pixel_size_nm, path)]
    return [_localisations_layer(read_localizations(path), path)]


def read_csv(path) -> list[tuple]:
    """Localisations or truth as Points, every column a feature: ours / ThunderSTORM, or the
    SMLM challenge's layout."""
    path = _one(path)
    return [_localisations_layer(read_localizations(path), path)]


def _localisations_layer(table, path: str) -> tuple:
    """Points, every column a feature; files of localisations state no pixel size."""
    return nm_points_layer(table, Path(path).stem, "localisations", LOCALISATION_MARKER_NM, path)


def _one(path) -> str:
    if isinstance(path, list):
        if len(path) != 1:
            raise InputError("open one file at a time")
        path = path[0]
    return str(path)
