"""napari writer: a Points layer -> ThunderSTORM-layout CSV (frames 1-based, nm); and the
widgets' Export CSV."""

from __future__ import annotations

from pathlib import Path

from napari.utils.notifications import show_error, show_info

from ..io.localizations_csv import write_localizations_csv
from .layers import TAG, table_from_layer, table_from_points


def write_points_csv(path: str, data, attributes: dict) -> list[str]:
    """Write atomically; returns [path] as npe2 expects."""
    table = table_from_points(data, attributes.get("features"), attributes.get("scale", (1, 1, 1)),
                              attributes.get("translate", (0, 0, 0)))
    write_localizations_csv(path, table)
    return [path]


def output_layer(viewer, source, role: str):
    """The layer this plugin made from image layer `source` in this role, or None."""
    for candidate in viewer.layers:
        meta = candidate.metadata.get(TAG, {})
        if meta.get("role") == role and source is not None and meta.get("source") == source.name:
            return candidate
    return None


def export_csv(points, path, run_first: str) -> None:
    """A widget's Export CSV: the Points layer `points` to the .csv `path`; says what went wrong
    (nothing yet: press `run_first`) or what was written, as a notification."""
    if points is None or not len(points.data):
        show_error(f"nothing to export: press {run_first!r} first")
        return
    path = Path(path)
    if path.suffix.lower() != ".csv" or path.is_dir():
        show_error("choose a .csv file to export to")
        return
    write_localizations_csv(path, table_from_layer(points))
    show_info(f"wrote {len(points.data)} localisations to {path}")
