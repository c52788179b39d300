"""napari writer: a Points layer -> ThunderSTORM-layout CSV (frames 1-based, nm)."""

from __future__ import annotations

from ..io.localizations_csv import write_localizations_csv
from .layers import table_from_points


def write_points_csv(path: str, data, attributes: dict) -> list[str]:
    """Write atomically; returns [path] as npe2 expects."""
    table = table_from_points(data, attributes.get("features"), attributes.get("scale", (1, 1, 1)),
                              attributes.get("translate", (0, 0, 0)))
    write_localizations_csv(path, table)
    return [path]
