"""Atomic file writes: write beside the target, then rename over it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_paths(*targets: str | os.PathLike) -> Iterator[list[Path]]:
    """Yield one temporary path next to each target (with the target's suffix, so writers that
    choose a format by it still do); when the block succeeds, all of them replace their targets,
    so no target changes unless every output is ready.

    On any exception the temporary files are removed and every target is left as it was.
    """
    temporaries = []
    try:
        for target in map(Path, targets):
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".part{target.suffix}", dir=target.parent)
            os.close(fd)
            temporaries.append(Path(tmp))
        yield list(temporaries)
        for tmp, target in zip(temporaries, targets):
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual mode
            os.replace(tmp, target)
    finally:
        for tmp in temporaries:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `target`; on success it replaces `target` (atomic_paths
    for one file)."""
    with atomic_paths(target) as (tmp,):
        yield tmp


def write_text_atomic(target: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `target` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
