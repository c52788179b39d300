"""The files a command writes, checked before it does any work: never one of its inputs, never a
folder, and in a folder it can write to."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..errors import InputError

PathLike = str | os.PathLike


def open_to_writing(folder: Path) -> bool:
    """Whether results may be written into `folder` unasked: this process can, and its owner has
    not made it read-only (which an administrator's process could otherwise write through)."""
    try:
        return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & stat.S_IWUSR)
    except OSError:
        return False


def check_outputs(inputs: Iterable[PathLike | None], outputs: Mapping[str, PathLike | None],
                  overwrite: bool = True) -> None:
    """InputError naming the output (by its option, e.g. "--out") when it is one of `inputs` (the
    same path, or the same file through a link or another name), names a folder, lies where
    nothing can be written (a read-only or full disk, a file in the way, no permission), or, unless
    `overwrite`, is a file already (a result it would replace). None entries are skipped; outputs
    must differ from each other too."""
    readable = [Path(p) for p in inputs if p is not None]
    written: dict[Path, str] = {}
    for option, path in outputs.items():
        if path is None:
            continue
        path = Path(path)
        for source in readable:
            if _same_file(path, source):
                raise InputError(f"{option} {path} is the input {source}: write to a new file "
                                 "(nothing was written)")
        if path.resolve() in written:
            raise InputError(f"{option} {path} is also {written[path.resolve()]}: give each output its own file")
        written[path.resolve()] = option
        if path.is_dir():
            raise InputError(f"{option} {path} is a folder: give a file name in it, e.g. {path / 'locs.csv'}")
        if not overwrite and path.exists():
            raise InputError(f"{option} {path} exists: give a new file, or --overwrite to replace it (nothing was "
                             "written)")
        _check_writable(option, path)


def file_stem(name: str) -> str:
    """A file name without its ending, to give it another: kept.txt -> kept; run.v2 -> run.v2;
    locs_0.5um -> locs_0.5um; 'kept. ' -> kept."""
    name = name.strip().rstrip(".")
    stem = Path(name).stem if Path(name).suffix[1:].isalpha() else name
    return stem if stem and not stem.startswith(".") else "localisations"


def missing_folder(path: PathLike, is_folder: bool = False) -> Path | None:
    """The outermost folder that writing the file `path` (the folder `path`, with is_folder) makes,
    or None where its folder exists: a mistyped folder is to be said, not made silently."""
    path = Path(path)
    missing = [folder for folder in ([path] if is_folder else []) + list(path.parents) if not folder.exists()]
    return missing[-1] if missing else None


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def _check_writable(option: str, path: Path) -> None:
    """Write and remove a small file in the nearest existing folder of `path`."""
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"{option} {path}: {folder} is a file, not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-") as probe:
            probe.write(b"0" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        raise InputError(f"{option} {path}: cannot write in {folder} ({exc.strerror})") from exc


def check_free_space(path: PathLike, needed_bytes: int) -> None:
    """InputError when the disk that will hold `path` has less than `needed_bytes` (and 5 %) free:
    said before writing, since some writers (HDF5) do not fail cleanly on a full disk."""
    folder = Path(path).parent
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if free < needed_bytes * 1.05:
        raise InputError(f"{path}: not enough space on its disk ({needed_bytes / 1e6:,.1f} MB needed, "
                         f"{free / 1e6:,.1f} MB free); nothing was replaced")
