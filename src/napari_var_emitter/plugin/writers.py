"""napari writer: a Points layer -> ThunderSTORM-layout CSV (frames 1-based, nm); and the
widgets' exports (one check of the file chosen, errors shown, not raised)."""

from __future__ import annotations

from pathlib import Path

from napari.utils.notifications import show_error, show_info

from ..errors import InputError
from ..io.localizations_csv import write_localizations_csv
from ..io.outputs import check_outputs, file_stem, missing_folder
from .layers import TAG, shown_note, table_from_layer, table_from_points


def write_points_csv(path: str, data, attributes: dict) -> list[str]:
    """Write the points the layer shows (the Filter's kept ones) atomically; returns [path] as npe2
    expects."""
    table = table_from_points(data, attributes.get("features"), attributes.get("scale", (1, 1, 1)),
                              attributes.get("translate", (0, 0, 0)), attributes.get("shown"))
    write_localizations_csv(path, table)
    return [path]


def output_layer(viewer, source, role: str):
    """The layer this plugin made from image layer `source` in this role, or None."""
    for candidate in viewer.layers:
        meta = candidate.metadata.get(TAG, {})
        if meta.get("role") == role and source is not None and meta.get("source") == source.name:
            return candidate
    return None


WROTE = "wrote "  # how every export's message begins (its line in a widget's status) ...
NOT_EXPORTED = "✖ not exported: "  # ... and every refused one's


def export_file(path, suffixes: tuple[str, ...], write, status, nothing_yet: str | None = None) -> None:
    """A widget's export: write(path) -> message to `path` (a FileEdit's value) when it names a
    file ending in one of `suffixes`. `nothing_yet` (why there is nothing to write), a bad path
    or an InputError from `write` is shown as an error notification, the message (beginning with
    WROTE) as info; either as the last line of the widget's `status` label in place of the last
    export's (a notification alone passed unseen)."""
    path = Path(path) if path else None
    try:
        if nothing_yet:
            raise InputError(nothing_yet)
        if path is None or path.is_dir():
            raise InputError(f"choose a {suffixes[0]} file to export to: type its name in the box, or press "
                             "Select file beside it")
        if path.suffix.lower() not in suffixes:
            raise InputError(f"{path.name!r} is not a {suffixes[0]} file: name it {file_stem(path.name)}{suffixes[0]} "
                             "to export to it")
        check_outputs([], {"export to": path})  # a folder in the way, or none to write in: said before writing
        replaced, folder = path.exists(), missing_folder(path)
        message = write(path)
    except InputError as exc:
        _say_refused(status, str(exc))
        return
    except OSError as exc:  # a folder not open to writing, a full disk: the file chosen, not a temporary one's name
        _say_refused(status, f"cannot write {path} ({exc.strerror or exc})")
        return
    if folder is not None:  # a mistyped folder is said, not made silently
        message += f" (made the folder {folder})"
    elif replaced:
        message += " (it replaces the file of that name)"
    show_info(message)
    _say_export(status, message)


def _say_refused(status, why: str) -> None:
    show_error(why)
    _say_export(status, f"{NOT_EXPORTED}{why}")  # not the last export's "wrote …", as if this one had


def _say_export(status, line: str) -> None:
    """`line` as the last line of a widget's status, in place of the last export's."""
    kept = [said for said in status.value.splitlines() if not said.startswith((WROTE, NOT_EXPORTED))]
    status.value = "\n".join(kept + [line.replace("\n", " ")])  # one line: the next export's replaces it whole


def export_csv(points, path, run_first: str, status) -> None:
    """A widget's Export CSV of the Points layer `points` (none yet: press `run_first`), said in `status`."""
    def write(path: Path) -> str:
        table = table_from_layer(points)
        write_localizations_csv(path, table)
        return f"{WROTE}{len(table):,} localisations to {path}{shown_note(points)}"

    empty = points is None or not len(points.data)
    export_file(path, (".csv",), write, status, f"nothing to export: press {run_first!r} first" if empty else None)
