"""Long stacks: prediction chunk by chunk, each chunk's table saved as it finishes (a part
file), resumable after an interruption, optionally spread over a Dask cluster; the parts are
merged in frame order into one CSV (or HDF5) file at the end.

A run (a StackJob; the CLI and the Predict widget) owns OUT.parts/ beside OUT while it runs
(predict/job_folder.py: a lock, job.json with the settings and the inputs' contents, one
chunk_<start>_<stop>.npz per finished chunk: the internal table's columns as NumPy arrays, 0-based
frames, each written atomically). Running the same job again on the same inputs skips the chunks
already there, so no frame is lost or localised twice; the folder is removed once OUT is
complete, or when a run ends before saving any chunk, so it never blocks the next run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io.atomic import atomic_path
from ..io.camera import Camera
from ..io.localizations import write_localizations_stream
from ..io.outputs import check_free_space
from ..io.stack import open_stack
from ..io.table import validate_table
from ..io.tiff import read_here
from ..model.context import context_reach
from .frames import SigmaNote, predict_frames, with_psf_sigma
from .job_folder import JobFolder, file_digest, frames_digest
from .model_cache import cached_model
from .options import PredictOptions


def chunk_ranges(n_frames: int, chunk_frames: int) -> list[tuple[int, int]]:
    """[start, stop) frame ranges covering 0..n_frames-1."""
    if chunk_frames < 1:
        raise InputError("chunk size must be at least one frame")
    return [(start, min(start + chunk_frames, n_frames)) for start in range(0, n_frames, chunk_frames)]


def parts_folder(out: str | Path) -> Path:
    """OUT.parts: where a run into `out` keeps its chunks until `out` is complete."""
    return Path(out).with_name(Path(out).name + ".parts")


def output_without_results(out: str | Path) -> Path:
    """`out`, or where results are there already, the first of NAME-2.EXT, NAME-3.EXT, ... that
    holds none: a default output never replaces results. A run left unfinished has written no OUT
    yet (only its OUT.parts), so it keeps its name, and running it again resumes it."""
    out = Path(out)
    for n in range(1, 10_000):
        candidate = out if n == 1 else out.with_name(f"{out.stem}-{n}{out.suffix}")
        if not candidate.exists():
            return candidate
    raise InputError(f"{out.parent} holds 10,000 results named like {out.name}: choose an output file")


def run_chunk(stack: str, camera: dict, options: dict, start: int, stop: int) -> pd.DataFrame:
    """Localisations of frames [start, stop) of the stack at path `stack`, opened here, so a worker
    process reads only its own frames (one chunk in memory); camera and options as dicts (they
    travel to Dask workers)."""
    options = PredictOptions.from_dict(options)
    model = cached_model(options.weights, options.device)[0]
    source = open_stack(stack).frames
    # the chunk and the context frames its model sees beside it, read here, in this process (on a
    # Dask worker the default would ship the file's graph around)
    first, last = context_reach(start, stop, len(source), model.config.context_frames)
    frames = read_here(source[first:last])
    return predict_frames(model, frames, Camera.from_dict(camera), options, first_frame=first,
                          span=(start - first, stop - first)).table


@dataclasses.dataclass
class StackJob:
    """One prediction run over frames [first, stop) of a stack into `out`, chunk by chunk; the
    CLI and the Predict widget both run it. `stack` names it in the job file: the stack file's
    path (Dask workers open it there) or, for frames only in memory, a description of them."""

    stack: str
    camera: Camera
    options: PredictOptions
    out: Path
    chunk_frames: int
    first: int
    stop: int
    frames: Any = None  # (T, Y, X) ADU, numpy or dask, when they do not come from the path

    folder: JobFolder | None = None
    said: SigmaNote | None = None  # what the user should hear of the run's set-up (the PSF sigma estimated)

    @classmethod
    def start(cls, stack: str | Path, camera: Camera, options: PredictOptions, out: str | Path,
              chunk_frames: int, frame_range: tuple[int, int] | None = None, frames=None,
              restart: bool = False) -> StackJob:
        """Claim OUT.parts for frames [first, stop) (all by default): resume the same job found
        there, or start over (job_folder.JobFolder.claim; `restart` discards a run with other
        settings). `frames` gives the frames when they are not to be read from the stack file.
        The job holds the folder until finish() or close()."""
        if frames is None:
            stack = str(Path(stack).resolve())
            source = open_stack(stack).frames
        else:
            source = frames
        n_frames = source.shape[0]
        first, stop = frame_range or (0, n_frames)
        if not 0 <= first < stop <= n_frames:
            raise InputError(f"frames {first + 1}..{stop} (1-based) are outside the stack's 1..{n_frames}")
        chunk_ranges(stop - first, chunk_frames)  # checks the chunk size
        # whole batches: the refinement judges per batch (frames._refine_batch), so any chunk size gives what one
        # pass gives (chunks of 250 frames in batches of 4 stated other uncertainties in every second chunk)
        chunk_frames = -(-chunk_frames // options.batch_size) * options.batch_size
        folder = JobFolder(parts_folder(out), Path(out))
        folder.lock()  # before any work: a second run on this output stops at once
        try:
            # one PSF sigma for the refinement of every chunk, estimated once (said in `said`)
            options, said = with_psf_sigma(options, cached_model(options.weights, options.device)[0],
                                           source[first:stop], camera)
            job = cls(str(stack), camera, options, Path(out), chunk_frames, first, stop, frames, folder, said)
            settings = {"stack": job.stack, "camera": camera.to_dict(), **options.to_dict(),
                        "chunk_frames": chunk_frames, "n_frames": n_frames, "frames": [first, stop]}
            inputs = {"stack": frames_digest(source), "model": file_digest(options.weights),
                      **{f"camera {name}": file_digest(path) for name, path in camera.maps().items()}}
            if frames is None:
                inputs["stack"] = {"bytes": Path(stack).stat().st_size, "frames": inputs["stack"]}
        except BaseException:
            folder.release(remove=not folder.chunk_files())
            raise
        folder.claim(settings, inputs, restart)
        return job

    @property
    def parts(self) -> Path:
        return self.folder.path

    @property
    def ranges(self) -> list[tuple[int, int]]:
        return [(self.first + a, self.first + b) for a, b in chunk_ranges(self.stop - self.first, self.chunk_frames)]

    def todo(self) -> list[tuple[int, int]]:
        """The chunks not saved yet."""
        return [r for r in self.ranges if not _part(self.parts, r).exists()]

    def saved(self) -> Iterator[tuple[tuple[int, int], pd.DataFrame]]:
        """The chunks saved so far (by a run before this one, when it resumes), with their tables."""
        for r in self.ranges:
            if _part(self.parts, r).exists():
                yield r, _read_part(_part(self.parts, r))

    def run(self, r: tuple[int, int], progress: Callable[..., None] | None = None):
        """Predict chunk r here (its frames read batch by batch, the next while the model works
        on one) and save its table; returns the Prediction (its maps too). progress(frames done,
        frames in chunk, frames through the network) after each batch."""
        source = self.frames if self.frames is not None else open_stack(self.stack).frames
        model = cached_model(self.options.weights, self.options.device)[0]
        prediction = predict_frames(model, source, self.camera, self.options, progress=progress, span=r)
        self.save(r, prediction.table)
        return prediction

    def save(self, r: tuple[int, int], table: pd.DataFrame) -> None:
        """Chunk `r`'s localisations as a part, once they are a table the file can hold (a chunk of NaN
        saved was resumed, and refused at the end, run after run)."""
        try:
            validate_table(table, f"the localisations of frames {r[0] + 1:,}–{r[1]:,}")
        except InputError as exc:
            raise InputError(f"{exc}: nothing of them was saved; check the camera's values") from exc
        with atomic_path(_part(self.parts, r)) as tmp, open(tmp, "wb") as f:
            np.savez(f, **{column: table[column].to_numpy() for column in table.columns})

    def finish(self) -> int:
        """Merge the parts in frame order into `out` (CSV, or HDF5 for .h5 / .hdf5; replaced
        only when complete), remove them and let the folder go; returns the number of
        localisations."""
        check_free_space(self.out, 2 * sum(_part(self.parts, r).stat().st_size for r in self.ranges))
        rows = write_localizations_stream(self.out, (_read_part(_part(self.parts, r)) for r in self.ranges))
        self.folder.release(remove=True)
        return rows

    def close(self) -> None:
        """Let the folder go (after finish(), or when the run stops early): kept with the chunks
        saved so far for a resume, removed when none was saved."""
        self.folder.release(remove=not self.folder.chunk_files())


def predict_stack_to_file(stack: str | Path, camera: Camera, options: PredictOptions, out: str | Path,
                          chunk_frames: int, client=None, progress: Callable[[int, int], None] | None = None,
                          inspect: Callable[[pd.DataFrame], None] | None = None, restart: bool = False,
                          started: Callable[[StackJob], None] | None = None) -> int:
    """Predict every frame of the stack file into `out` (ThunderSTORM CSV, or HDF5 for .h5 /
    .hdf5); returns the number of localisations. With a dask.distributed `client`, chunks run on
    its workers. progress(done, total) counts chunks; inspect(table) sees each chunk's table as it
    finishes (e.g. to check the data against the model's training ranges); `restart` discards the
    chunks of an unfinished run with other settings (StackJob.start); started(job) hears of the
    job once it holds its output (e.g. to say the PSF sigma it estimated: job.said)."""
    job = StackJob.start(stack, camera, options, out, chunk_frames, restart=restart)
    try:
        if started is not None:
            started(job)
        todo = job.todo()
        done = len(job.ranges) - len(todo)
        if client is None:
            finished = ((r, job.run(r).table) for r in todo)
        else:
            from distributed import as_completed

            camera_values, option_values = camera.to_dict(), job.options.to_dict()  # the run's PSF sigma
            futures = {client.submit(run_chunk, job.stack, camera_values, option_values, *r, pure=False): r
                       for r in todo}
            finished = ((futures[future], table) for future, table in as_completed(futures, with_results=True))
        for r, table in finished:
            if client is not None:
                job.save(r, table)
            done += 1
            if inspect is not None:
                inspect(table)
            if progress is not None:
                progress(done, len(job.ranges))
        return job.finish()
    finally:
        job.close()


@contextlib.contextmanager
def dask_client(address: str):
    """A dask.distributed Client, closed (with its LocalCluster) on leaving: `local:N` starts N
    single-threaded worker processes on loopback; anything else is a scheduler address."""
    from distributed import Client, LocalCluster

    if address.startswith("local:"):
        try:
            workers = int(address.split(":", 1)[1])
        except ValueError as exc:
            raise InputError(f"--dask local:N needs a number of workers, got {address!r}") from exc
        # a Ctrl-C printed four lines of cancelled tasks and a worker killed, and each worker's traceback, before
        # the one line that says the run was interrupted: the workers' and nannies' warnings are not printed (a
        # task's error still reaches us), and the workers start deaf to Ctrl-C, which they keep (an ignored signal
        # stays ignored in a new process; a blocked one did not), while this process closes them
        if workers < 1:
            raise InputError(f"--dask local:N needs 1 or more workers, got {address!r}")
        main = threading.current_thread() is threading.main_thread()  # (only it may set a signal's handler)
        deaf = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            # a free port for its HTTP server: two runs at once had the second say "Port 8787 is already in use"
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
        finally:
            if main:
                signal.signal(signal.SIGINT, deaf)
        with cluster, Client(cluster) as client:
            yield client
        return
    try:
        client = Client(address, timeout=30)
    except OSError as exc:
        raise InputError(f"cannot reach the Dask scheduler at {address} ({exc})") from exc
    except ValueError as exc:  # not an address ("missing port number")
        raise InputError(f"--dask {address}: give local:N (N worker processes here) or a scheduler's address, "
                         f"e.g. tcp://HOST:8786 ({exc})") from exc
    with client:
        yield client


def _part(parts: Path, r: tuple[int, int]) -> Path:
    return parts / f"chunk_{r[0]:09d}_{r[1]:09d}.npz"


def _read_part(path: Path) -> pd.DataFrame:
    with np.load(path, allow_pickle=False) as columns:
        return pd.DataFrame({column: columns[column] for column in columns.files})
