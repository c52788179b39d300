"""The folder of a resumable prediction run (OUT.parts beside OUT): a lock that one run holds
while it owns the folder (an OS lock, released when the process ends however it ends), the
manifest (job.json: the run's settings and the contents of its inputs) and the chunk files.

A folder is resumed only by a run with the same settings on the same inputs: a changed stack or
model (by content) starts the run over, saying so; a folder without a valid manifest is never
adopted; chunk files that cannot be read are computed again."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io.atomic import write_text_atomic
from ..io.tiff import read_here

LOCK = "lock"
MANIFEST = "job.json"
CHUNK_GLOB = "chunk_*.npz"


class JobFolder:
    """OUT.parts of one run: `lock` it, `claim` it (resume or start over), `release` it."""

    def __init__(self, path: Path, out: Path) -> None:
        self.path, self.out = Path(path), Path(out)
        self._lock_file = None

    def lock(self) -> None:
        """Lock the folder for this run (InputError naming the run that holds it), before any
        work, so that a second run on the same output stops at once."""
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock()
        for stale in self.out.parent.glob(f".{self.out.name}.*.part{self.out.suffix}"):
            stale.unlink(missing_ok=True)  # a merge into OUT that was killed (only the lock holder merges)

    def claim(self, settings: dict[str, Any], inputs: dict[str, Any], restart: bool = False) -> None:
        """Make the locked folder this run's: resume the chunks of the same run, or start over
        (saying why) when the inputs changed, the manifest is missing or damaged, no chunk was
        saved yet, or `restart` is set; chunks of a run with other settings on the same inputs
        are an InputError otherwise (the folder is let go then)."""
        try:
            self._adopt(_plain(settings), _plain(inputs), restart)
        except BaseException:
            self.release()
            raise

    def chunk_files(self) -> list[Path]:
        return sorted(self.path.glob(CHUNK_GLOB))

    def release(self, remove: bool = False) -> None:
        """Unlock (and with `remove`, delete the folder first, while still holding it); once
        released, the folder may be another run's, so a second call does nothing."""
        if self._lock_file is None:
            return
        if remove:
            shutil.rmtree(self.path, ignore_errors=True)
        self._lock_file.close()  # closing the file releases its lock
        self._lock_file = None

    def _lock(self) -> None:
        handle = open(self.path / LOCK, "a+", encoding="utf-8")
        try:
            _lock_exclusive(handle)
        except OSError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise InputError(f"{self.out} is being written by another run ({owner}): wait for it to finish or "
                             "stop it, then run this again") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}, started {datetime.datetime.now():%Y-%m-%d %H:%M:%S}")
        handle.flush()
        self._lock_file = handle

    def _adopt(self, settings: dict, inputs: dict, restart: bool) -> None:
        chunks = self.chunk_files()
        before = _read_manifest(self.path / MANIFEST)
        reason = None
        if before is None:
            reason = "it has no valid job.json (a run that stopped while starting, or not ours)"
        elif before.get("inputs") != inputs:
            changed = sorted(k for k in set(before.get("inputs", {})) | set(inputs)
                             if before.get("inputs", {}).get(k) != inputs.get(k))
            reason = f"its {' and '.join(changed)} changed since that run"
        elif before.get("settings") != settings:
            changed = sorted(k for k in set(before["settings"]) | set(settings)
                             if before["settings"].get(k) != settings.get(k))
            if chunks and not restart:
                saved = before["settings"]
                if changed == ["chunk_frames"] and saved.get("chunk_frames", 0) % saved.get("batch_size", 1):
                    raise InputError(f"{self.path} holds {len(chunks)} saved chunk(s) of {saved['chunk_frames']} "
                                     "frames, not whole batches, from an older version (chunks are whole batches "
                                     "now, and its chunks did not give what one pass gives): add --restart")
                was = ", ".join(_was_now(k, saved.get(k), settings.get(k)) for k in changed)
                raise InputError(f"{self.path} holds {len(chunks)} saved chunk(s) of an unfinished run with other "
                                 f"settings ({was}): run it with those settings again to finish it, or add "
                                 "--restart to discard them")
            reason = f"it was started with other settings ({', '.join(changed)})"
        if reason is None:
            self._drop_unreadable(chunks)
            return
        if chunks:
            warnings.warn(f"{self.path}: discarding {len(chunks)} saved chunk(s) and starting over: {reason}",
                          stacklevel=3)
        for chunk in chunks:
            chunk.unlink()
        write_text_atomic(self.path / MANIFEST, json.dumps({"settings": settings, "inputs": inputs}, indent=2))

    def _drop_unreadable(self, chunks: list[Path]) -> None:
        for chunk in chunks:
            try:
                with zipfile.ZipFile(chunk) as archive:
                    if archive.testzip() is not None:
                        raise zipfile.BadZipFile("a member fails its CRC")
            except (zipfile.BadZipFile, OSError) as exc:
                warnings.warn(f"{chunk} is damaged ({exc}): computing that chunk again", stacklevel=4)
                chunk.unlink()


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def frames_digest(frames) -> str:
    """SHA-256 (hex) of the first and last frames of a (T, Y, X) array (numpy or dask), with its
    shape and type: what tells one acquisition from another without reading it all."""
    digest = hashlib.sha256(repr((tuple(frames.shape), str(frames.dtype))).encode())
    for index in sorted({0, len(frames) - 1}):
        digest.update(np.ascontiguousarray(read_here(frames[index])).tobytes())
    return digest.hexdigest()


def _read_manifest(path: Path) -> dict | None:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(manifest, dict) and all(isinstance(manifest.get(k), dict) for k in ("settings", "inputs"))
    return manifest if ok else None


def _plain(values: dict) -> dict:
    """As JSON reads it back (tuples as lists, paths as strings), so manifests compare equal."""
    return json.loads(json.dumps(values, default=str))


def _lock_exclusive(handle) -> None:
    """Lock an open file for this process, without waiting (OSError when another holds it)."""
    if os.name == "nt":
        import msvcrt

        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def _was_now(setting: str, was: Any, now: Any) -> str:
    """'threshold 0.3 then, 0.5 now' (a value too long to read, a camera's or a model's, by its name only)."""
    if any(isinstance(value, (dict, list)) or len(str(value)) > 40 for value in (was, now)):
        return setting
    return f"{setting} {was} then, {now} now"
