"""Lazy OME-TIFF / TIFF stacks in, OME-TIFF out.

Axis rule for reading: singleton axes are dropped; the last two axes are Y, X; one remaining
axis of any name (T, Z, I, Q, ...) is taken as frames; a single YX image becomes one frame.
RGB(A) samples, or two or more non-singleton non-spatial axes (e.g. T and C), are an error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import tifffile
import zarr

from ..errors import InputError
from .atomic import atomic_path
from .camera import MAP_FIELDS, Camera

CAMERA_ANNOTATION_NS = "napari-var-emitter/camera"
_LENGTH_TO_NM = {"nm": 1.0, "µm": 1e3, "um": 1e3, "micron": 1e3, "mm": 1e6, "cm": 1e7,
                 "m": 1e9, "Å": 0.1, "pm": 1e-3}


@dataclasses.dataclass
class Stack:
    """A camera stack opened lazily.

    frames: (T, Y, X) dask array of camera counts (ADU), one TIFF page per chunk.
    camera_metadata: the camera fields the file states (a subset of `Camera`'s).
    """

    path: Path
    frames: da.Array
    camera_metadata: dict[str, Any]


def read_stack(path: str | os.PathLike) -> Stack:
    """Open a TIFF/OME-TIFF stack lazily (constant memory) as (T, Y, X) ADU frames."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    tif = None
    try:
        with _tifffile_complaints() as complaints:
            tif = tifffile.TiffFile(path)
            series = tif.series[0]
        if complaints:
            raise InputError(f"{path}: file is truncated or damaged ({complaints[0]})")
        _check_complete(series, path)
        if np.dtype(series.dtype).kind not in "uif":
            raise InputError(f"{path}: pixel type {series.dtype} is not a camera image")
        array = da.from_zarr(zarr.open(tif.aszarr(series=0, level=0), mode="r"))
        return Stack(path, as_frames(array, series.axes, series.shape, path), _camera_metadata(tif))
    except Exception as exc:
        if tif is not None:
            tif.close()
        if isinstance(exc, InputError):
            raise
        # tifffile raises many exception types for damaged files
        raise InputError(f"{path}: not a readable TIFF ({type(exc).__name__}: {exc})") from exc


def read_here(frames) -> np.ndarray:
    """A numpy array of `frames` (numpy or dask), read in this process whatever scheduler (a
    Dask cluster's) is the default."""
    if hasattr(frames, "compute"):
        frames = frames.compute(scheduler="synchronous")
    return np.asarray(frames)


def read_spread(frames, at_most: int) -> np.ndarray:
    """Up to `at_most` of (T, Y, X) frames (numpy or dask), spread evenly from the first to the
    last, read here (read_here)."""
    picks = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), at_most)).astype(int))
    return read_here(frames[picks])


def as_frames(array: da.Array, axes: str, shape: tuple[int, ...], path: Path) -> da.Array:
    """Apply the module's axis rule: returns (T, Y, X)."""
    if "S" in axes and shape[axes.index("S")] > 1:
        raise InputError(f"{path}: RGB/multi-sample image (axes {axes}); SMLM needs grey frames")
    if len(shape) < 2:
        raise InputError(f"{path}: image has {len(shape)} dimension(s); need at least Y, X")
    keep = [i for i, n in enumerate(shape[:-2]) if n > 1]
    array = array.reshape(tuple(shape[i] for i in keep) + tuple(shape[-2:]))
    if len(keep) > 1:
        named = ", ".join(f"{axes[i]}={shape[i]}" for i in keep)
        raise InputError(
            f"{path}: {len(keep)} non-spatial axes ({named}, axes {axes}); save one channel "
            "and one focal plane as a T, Y, X stack"
        )
    return array if keep else array[np.newaxis]


@contextlib.contextmanager
def _tifffile_complaints() -> Iterator[list[str]]:
    """Collect what tifffile logs about damaged pages or series it could not shape.

    tifffile reads what it can of a damaged file and only logs the rest: a truncated
    compressed stack would otherwise open as a shorter one, frames silently lost.
    """
    complaints: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: complaints.append(record.getMessage())
    logger = logging.getLogger("tifffile")
    logger.addHandler(handler)
    try:
        yield complaints
    finally:
        logger.removeHandler(handler)


def _check_complete(series: Any, path: Path) -> None:
    """Fail early on truncated files: the series' image data must lie inside the file."""
    size = os.path.getsize(path)
    if series.dataoffset is not None:
        end = series.dataoffset + series.nbytes
    else:
        page = series.pages[len(series.pages) - 1]
        if page is None:
            raise InputError(f"{path}: file is truncated (its last page is missing)")
        end = max(o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=True))
    if end > size:
        raise InputError(f"{path}: file is truncated ({size} bytes, image data needs {end})")


def _camera_metadata(tif: tifffile.TiffFile) -> dict[str, Any]:
    """Camera fields stated in OME-XML (or ImageJ's resolution tags)."""
    if tif.is_ome and tif.ome_metadata:
        return _ome_camera_metadata(tif.ome_metadata)
    if tif.is_imagej:
        return _imagej_pixel_size(tif)
    return {}


def _ome_camera_metadata(xml: str) -> dict[str, Any]:
    root = ET.fromstring(xml)
    found: dict[str, Any] = {}
    pixels = root.find(".//{*}Image/{*}Pixels")
    if pixels is not None and pixels.get("PhysicalSizeX"):
        sx = _to_nm(pixels.get("PhysicalSizeX"), pixels.get("PhysicalSizeXUnit", "µm"))
        sy = _to_nm(pixels.get("PhysicalSizeY", pixels.get("PhysicalSizeX")),
                    pixels.get("PhysicalSizeYUnit", pixels.get("PhysicalSizeXUnit", "µm")))
        if not np.isclose(sx, sy, rtol=1e-3):
            raise InputError(f"non-square pixels ({sx} x {sy} nm) are not supported")
        found["pixel_size_nm"] = sx
    detector = root.find(".//{*}Instrument/{*}Detector")
    if detector is not None:
        if detector.get("Type") in ("EMCCD", "CMOS"):
            found["type"] = "EMCCD" if detector.get("Type") == "EMCCD" else "sCMOS"
        if detector.get("AmplificationGain"):
            found["em_gain"] = float(detector.get("AmplificationGain"))
        if detector.get("Offset"):
            found["baseline_adu"] = float(detector.get("Offset"))
    for annotation in root.iterfind(".//{*}MapAnnotation"):
        if annotation.get("Namespace") == CAMERA_ANNOTATION_NS:
            for item in annotation.iterfind(".//{*}M"):
                key, text = item.get("K"), (item.text or "").strip()
                found[key] = text if key == "type" else float(text)
    return found


def _imagej_pixel_size(tif: tifffile.TiffFile) -> dict[str, Any]:
    unit = (tif.imagej_metadata or {}).get("unit", "").replace("\\u00B5", "µ")
    tag = tif.pages.first.tags.get("XResolution")
    if unit not in _LENGTH_TO_NM or tag is None or tag.value[0] == 0:
        return {}
    numerator, denominator = tag.value
    return {"pixel_size_nm": denominator / numerator * _LENGTH_TO_NM[unit]}


def _to_nm(value: str, unit: str) -> float:
    if unit not in _LENGTH_TO_NM:
        raise InputError(f"unknown OME length unit {unit!r}")
    return float(value) * _LENGTH_TO_NM[unit]


# ---------------------------------------------------------------------------- writing


def write_ome_tiff(path: str | os.PathLike, frames: Any, camera: Camera) -> None:
    """Write (T, Y, X) frames (numpy or dask; uint16 ADU or float32) as one OME-TIFF.

    The camera is recorded in OME-XML: pixel size on Pixels, EM gain and baseline on the
    Detector, and every `Camera` field in a MapAnnotation. Frames are streamed one at a
    time, so a dask stack is never held in memory whole. The write is atomic.
    """
    if getattr(frames, "ndim", None) != 3:
        raise InputError(f"frames must be (T, Y, X), got shape {getattr(frames, 'shape', None)}")
    dtype = np.dtype(frames.dtype)
    if dtype not in (np.uint16, np.float32):
        raise InputError(f"frames must be uint16 or float32, got {dtype}")
    xml = _ome_xml(frames.shape, dtype, camera)
    nbytes = int(np.prod(frames.shape)) * dtype.itemsize
    with atomic_path(path) as tmp:
        with tifffile.TiffWriter(tmp, bigtiff=nbytes > 2**31) as writer:
            writer.write(
                (np.asarray(frame) for frame in frames),
                shape=frames.shape,
                dtype=dtype,
                photometric="minisblack",
                description=xml,
                metadata=None,
            )


def _ome_xml(shape: tuple[int, int, int], dtype: np.dtype, camera: Camera) -> str:
    n_frames, height, width = shape
    ome = ET.Element("OME", {
        "xmlns": "http://www.openmicroscopy.org/Schemas/OME/2016-06",
        "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
        "xsi:schemaLocation": "http://www.openmicroscopy.org/Schemas/OME/2016-06 "
        "http://www.openmicroscopy.org/Schemas/OME/2016-06/ome.xsd",
        "Creator": "napari-var-emitter",
    })
    instrument = ET.SubElement(ome, "Instrument", ID="Instrument:0")
    ET.SubElement(instrument, "Detector", {
        "ID": "Detector:0",
        "Type": "EMCCD" if camera.type == "EMCCD" else "CMOS",
        "AmplificationGain": repr(float(camera.em_gain)),
        "Offset": repr(float(camera.baseline_adu)),
    })
    image = ET.SubElement(ome, "Image", ID="Image:0", Name="stack")
    ET.SubElement(image, "InstrumentRef", ID="Instrument:0")
    pixels = ET.SubElement(image, "Pixels", {
        "ID": "Pixels:0", "DimensionOrder": "XYCZT", "Type": dtype.name,
        "SizeX": str(width), "SizeY": str(height), "SizeC": "1", "SizeZ": "1",
        "SizeT": str(n_frames),
        "PhysicalSizeX": repr(float(camera.pixel_size_nm)), "PhysicalSizeXUnit": "nm",
        "PhysicalSizeY": repr(float(camera.pixel_size_nm)), "PhysicalSizeYUnit": "nm",
    })
    channel = ET.SubElement(pixels, "Channel", ID="Channel:0:0", SamplesPerPixel="1")
    ET.SubElement(channel, "DetectorSettings", ID="Detector:0")
    ET.SubElement(pixels, "TiffData", IFD="0", PlaneCount=str(n_frames))
    ET.SubElement(image, "AnnotationRef", ID="Annotation:0")
    annotations = ET.SubElement(ome, "StructuredAnnotations")
    mapping = ET.SubElement(annotations, "MapAnnotation",
                            ID="Annotation:0", Namespace=CAMERA_ANNOTATION_NS)
    value = ET.SubElement(mapping, "Value")
    for key, item in camera.to_dict().items():
        if key not in MAP_FIELDS:  # calibration-map paths belong to this machine's camera profile, not the file
            ET.SubElement(value, "M", K=key).text = str(item)
    return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(ome, encoding="unicode")


def write_image_tiff(path: str | os.PathLike, image: np.ndarray, pixel_nm: float) -> None:
    """Write one picture, (H, W) float32 or (H, W, 3) RGB in [0, 1] (stored as 8-bit), as an
    ImageJ TIFF whose resolution gives the pixel size (µm, as Fiji reads it), atomically."""
    image = np.asarray(image)
    rgb = image.ndim == 3 and image.shape[-1] == 3
    if not (image.ndim == 2 or rgb):
        raise InputError(f"an image to write must be (H, W) or (H, W, 3), got {image.shape}")
    data = (np.clip(image, 0, 1) * 255).round().astype(np.uint8) if rgb else image.astype(np.float32)
    per_um = 1000.0 / pixel_nm
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, data, imagej=True, resolution=(per_um, per_um), photometric="rgb" if rgb else
                         "minisblack", metadata={"unit": "um"})
