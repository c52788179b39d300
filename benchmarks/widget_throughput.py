"""A movie predicted from the Predict widget in a real napari viewer against the CLI's path on
the same OME-TIFF: frames/s of each (the widget's over a run cancelled halfway and resumed, and
optionally over an uninterrupted one too; with --interleave, block by block, alternately, so
both rates come from the same minutes of the machine), the longest event-loop stall seen (a 20 ms
QTimer's largest gap) while the widget ran, and the localisations each path saved (and, without
--interleave, the viewer shows).
First, what the run's Points layer costs the GUI thread (synthetic tables): one refresh of the
frame in view as a 2,000-frame movie's table grows (100 localisations per frame), as during a
run, and the longest stall while a finished run of 200,000 or 600,000 localisations is shown, as
at its end.

Run (a display is needed: xvfb-run -a on a headless machine):
    xvfb-run -a .venv/bin/python benchmarks/widget_throughput.py [--frames 2000] [--size 256] [--show]
    [--uninterrupted | --interleave FRAMES] [--layers-only]
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from napari_var_emitter.io.camera import Camera
from napari_var_emitter.io.tiff import write_ome_tiff
from napari_var_emitter.predict import PredictOptions
from napari_var_emitter.predict.long_stack import StackJob, predict_stack_to_file
from napari_var_emitter.predict.model_cache import cached_model
from napari_var_emitter.simulate.config import SimulationConfig
from napari_var_emitter.simulate.stack import simulate_stack

CAMERA = Camera(pixel_size_nm=100.0, baseline_adu=100.0, e_per_adu=0.5, read_noise_e=1.5)


def write_stack(folder: Path, n_frames: int, size: int) -> Path:
    """A simulated movie: 50 frames simulated, repeated to n_frames (the cost is the same)."""
    config = SimulationConfig(frame_size=size, n_frames=min(n_frames, 50), density_per_um2=0.5, camera=CAMERA)
    frames, _ = simulate_stack(config, np.random.default_rng(9_100_000))
    frames = np.resize(frames, (n_frames, size, size))
    path = folder / "movie.ome.tiff"
    write_ome_tiff(path, frames, CAMERA)
    return path


class StallMeter:
    """The largest gap between ticks of a 20 ms QTimer: how long the event loop was blocked; when
    in the run it ended, and the longest full garbage collection (any thread) meanwhile."""

    def __init__(self) -> None:
        from qtpy.QtCore import QTimer

        self.gaps, self.last, self.started = [], 0.0, 0.0  # gaps: (length, end since start), s
        self.full_gc_s, self.gc_started = [], 0.0
        self.timer = QTimer(interval=20)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append((now - self.last, now - self.started))
        self.last = now

    def _gc(self, phase: str, info: dict) -> None:
        if info["generation"] == 2:
            if phase == "start":
                self.gc_started = time.perf_counter()
            else:
                self.full_gc_s.append(time.perf_counter() - self.gc_started)

    def start(self) -> None:
        self.started = self.last = time.perf_counter()
        gc.callbacks.append(self._gc)
        self.timer.start()

    def stop(self) -> float:
        """Stop measuring; the largest gap (s)."""
        self.timer.stop()
        gc.callbacks.remove(self._gc)
        return self.largest()

    def _largest_gap(self) -> tuple[float, float]:
        return max(self.gaps, default=(float("nan"), 0.0))

    def largest(self) -> float:
        """The largest gap (s)."""
        return self._largest_gap()[0]

    def where(self) -> str:
        """When the largest gap ended, and the longest full garbage collection, in words."""
        gap, at = self._largest_gap()
        return (f"{gap * 1000:.0f} ms stall ending {at:.1f} s into the run; {len(self.full_gc_s)} full garbage "
                f"collection(s), longest {max(self.full_gc_s, default=0.0) * 1000:.0f} ms")


def localisations(first: int, n_frames: int, per_frame: int, size: int, rng):
    """A synthetic chunk's table: per_frame localisations in each of n_frames frames from `first`."""
    n = per_frame * n_frames
    return pd.DataFrame({"frame": np.repeat(np.arange(first, first + n_frames), per_frame),
                         "x_nm": rng.uniform(0, size * 100, n), "y_nm": rng.uniform(0, size * 100, n),
                         "photons": rng.uniform(100, 5000, n), "background": 50.0, "uncertainty_nm": 10.0,
                         "probability": rng.uniform(0.3, 1, n)})


def layer_costs(size: int) -> None:
    """What the run's Points layer costs the GUI thread: one refresh of the frame in view as a
    2,000-frame movie's table grows (100 localisations a frame), then, at the end of runs of
    200,000 and 600,000 localisations, the longest event-loop stall while the finished run's
    layer is built and swapped in, and the time until it is shown."""
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_var_emitter.plugin.predict_run import RunLayers
    from napari_var_emitter.predict.frames import Prediction

    viewer = napari.Viewer(show=False)
    image = viewer.add_image(np.zeros((2000, size, size), np.uint16), scale=(1, 100, 100), translate=(0, 50, 50))
    rng = np.random.default_rng(0)
    run = RunLayers(viewer, image, False, 0, 2000, (size, size), (16,), CAMERA, None, False)
    for first in range(0, 2000, 64):
        run.add(first, Prediction(localisations(first, min(64, 2000 - first), 100, size, rng), [], ()))
        if len(run.tables) % 6 == 0 or first + 64 >= 2000:
            run.shown_frame = None  # as in a run: the layer held another frame before
            started = time.perf_counter()
            run.flush()
            print(f"{len(run.table()):>7,} localisations: refresh of the frame in view "
                  f"{(time.perf_counter() - started) * 1000:5.1f} ms")
    for per_frame in (100, 300):
        run = RunLayers(viewer, image, False, 0, 2000, (size, size), (16,), CAMERA, None, False)
        run.add(0, Prediction(localisations(0, 2000, per_frame, size, rng), [], ()))
        meter, finished = StallMeter(), []
        meter.start()
        started = time.perf_counter()
        run.finish(done=lambda: finished.append(time.perf_counter()))
        while not finished:
            QApplication.processEvents()
            time.sleep(0.002)
        print(f"end of a run of {2000 * per_frame:,} localisations: shown after {finished[0] - started:.2f} s, "
              f"longest event-loop stall {meter.stop() * 1000:.0f} ms")
    viewer.close()


def interleaved(args, stack: Path, folder: Path, widget, run) -> None:
    """The movie in blocks of args.interleave frames, each through the CLI's path (StackJob, as
    `predict_stack_to_file`) and then through the widget ("range"): both rates over the same
    minutes of the machine, whose speed drifts over an hour. The widget's block holding the
    movie's middle frame is cancelled halfway and resumed (both parts timed); at the end, the
    localisations both paths saved are counted."""
    seconds = {"CLI": 0.0, "widget": 0.0}
    rows = {"CLI": 0, "widget": 0}
    stall = 0.0
    widget.frames.value = "range"
    for first in range(0, args.frames, args.interleave):
        stop = min(first + args.interleave, args.frames)
        n = stop - first
        started = time.perf_counter()
        job = StackJob.start(stack, CAMERA, PredictOptions(device="cpu"), folder / f"cli_{first}.csv",
                             args.chunk_frames, (first, stop))
        for r in job.todo():
            job.run(r)
        job.finish()
        cli = time.perf_counter() - started
        widget.first.value, widget.last.value = first, stop - 1
        out = folder / f"widget_{first}.csv"
        cancelled_stall = 0.0
        if first <= args.frames // 2 < stop:
            took, meter = run(out, cancel_at=n // 2)
            cancelled_stall = meter.largest()
            saved = len(list(out.with_name(out.name + ".parts").glob("chunk_*.csv")))
            ended = "finished before the cancel" if out.exists() else "cancelled"
            print(f"frames {first}..{stop - 1}: widget {ended} at frame {first + widget.job_progress.done} "
                  f"after {took:.1f} s, {saved} chunk(s) saved; status: {widget.status.value}")
            print(f"  {meter.where()}")
            more, meter = run(out)
            print(f"  resumed: {more:.1f} s more; status: {widget.status.value}")
            took += more
        else:
            took, meter = run(out)
        seconds["CLI"] += cli
        seconds["widget"] += took
        stall = max(stall, cancelled_stall, meter.largest())
        rows["CLI"] += len(pd.read_csv(folder / f"cli_{first}.csv"))
        rows["widget"] += len(pd.read_csv(out))
        print(f"frames {first}..{stop - 1}: CLI {n / cli:.3f}, widget {n / took:.3f} frames/s; {meter.where()}")
    cli_fps, widget_fps = (args.frames / seconds[path] for path in ("CLI", "widget"))
    print(f"interleaved: CLI {cli_fps:.3f}, widget {widget_fps:.3f} frames/s ({widget_fps / cli_fps - 1:+.1%}); "
          f"longest event-loop stall {stall * 1000:.0f} ms")
    print(f"localisations saved: CLI {rows['CLI']:,}, widget {rows['widget']:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--chunk-frames", type=int, default=64)
    parser.add_argument("--show", action="store_true",
                        help="show the viewer's window (under Xvfb, napari repaints it ~30 times/s in software "
                        "OpenGL, which takes CPU from the model)")
    parser.add_argument("--uninterrupted", action="store_true",
                        help="also time an uninterrupted widget run before the cancelled and resumed one")
    parser.add_argument("--interleave", type=int, metavar="FRAMES",
                        help="compare the paths block by block (this many frames each, alternately); the widget's "
                        "middle block is cancelled halfway and resumed")
    parser.add_argument("--layers-only", action="store_true", help="only the Points layer's costs (synthetic tables)")
    args = parser.parse_args()
    layer_costs(args.size)
    if args.layers_only:
        return
    import napari
    from qtpy.QtCore import QEventLoop, QTimer

    from napari_var_emitter.plugin.predict_widget import PredictWidget

    cached_model(None, "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        stack = write_stack(folder, args.frames, args.size)
        print(f"{args.frames} frames of {args.size}x{args.size}, chunks of {args.chunk_frames}")

        if not args.interleave:
            started = time.perf_counter()
            predict_stack_to_file(stack, CAMERA, PredictOptions(device="cpu"), folder / "cli.csv", args.chunk_frames)
            cli_fps = args.frames / (time.perf_counter() - started)
            print(f"CLI path:    {cli_fps:.2f} frames/s")

        viewer = napari.Viewer(show=args.show)
        layer = viewer.open(str(stack), plugin="napari-var-emitter")[0]
        widget = PredictWidget(viewer)
        viewer.window.add_dock_widget(widget)
        widget.image.value, widget.frames.value, widget.device.value = layer, "all frames", "cpu"
        widget.chunk_frames.value = args.chunk_frames

        def run(out: Path, cancel_at: int | None = None) -> tuple[float, StallMeter]:
            """Press Predict, then wait in a Qt event loop, as napari's own waits (not in a loop
            that calls processEvents every few ms, whose cost the run would then include)."""
            meter, loop, check = StallMeter(), QEventLoop(), QTimer(interval=100)

            def look() -> None:
                nonlocal cancel_at
                if widget.worker is None:
                    loop.quit()
                elif cancel_at is not None and widget.job_progress.done >= cancel_at:
                    widget.cancel()
                    cancel_at = None
            check.timeout.connect(look)
            meter.start()
            widget.out_file.value = out
            started = time.perf_counter()
            widget.start()
            check.start()
            loop.exec()
            check.stop()
            took = time.perf_counter() - started
            meter.stop()
            return took, meter

        if args.interleave:
            interleaved(args, stack, folder, widget, run)
            viewer.close()
            return
        if args.uninterrupted:
            seconds, meter = run(folder / "widget.csv")
            stall = meter.largest()
            widget_fps = args.frames / seconds
            print(f"widget path: {widget_fps:.2f} frames/s ({widget_fps / cli_fps - 1:+.1%} against the CLI), "
                  f"longest event-loop stall {stall * 1000:.0f} ms")
        first, meter_a = run(folder / "resumed.csv", cancel_at=args.frames // 2)
        saved = len(list((folder / "resumed.csv.parts").glob("chunk_*.csv")))
        print(f"cancelled at frame {widget.job_progress.done} after {first:.1f} s: {saved} chunk(s) saved; "
              f"status: {widget.status.value}")
        second, meter_b = run(folder / "resumed.csv")
        widget_fps = args.frames / (first + second)
        print(f"resumed: {second:.1f} s more; status: {widget.status.value}")
        print(f"widget path, cancelled and resumed: {widget_fps:.2f} frames/s over both parts "
              f"({widget_fps / cli_fps - 1:+.1%} against the CLI), longest event-loop stall "
              f"{max(meter_a.largest(), meter_b.largest()) * 1000:.0f} ms")
        rows = {name: len(pd.read_csv(folder / name)) for name in ("cli.csv", "resumed.csv")}
        shown = [lay for lay in viewer.layers if lay.visible and lay.name.endswith("detections")]
        print(f"localisations: CLI file {rows['cli.csv']:,}, widget file {rows['resumed.csv']:,}, "
              f"shown in the viewer {sum(len(lay.data) for lay in shown):,}")
        viewer.close()


if __name__ == "__main__":
    main()
