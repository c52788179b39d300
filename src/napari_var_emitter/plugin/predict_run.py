"""One run of the Predict widget off the GUI thread: the job (one frame in memory, or a whole
movie through predict.long_stack.StackJob, chunked and resumable as in the CLI), its progress
in frames/s and time left, and the layers it fills as chunks arrive."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from ..fit.scoring import fits_compiled
from ..predict.envelope import Envelope
from ..predict.frames import Prediction, predict_frames
from ..predict.long_stack import StackJob
from .layers import (ANALYSIS_OUTPUTS, BUILD_OFF_THREAD_FROM, PREVIEW_ROLE, TAG, frame_in_view, frame_into_view,
                     image_points, insert_built, layer_features, map_placement, output_options, outputs, points_kwargs,
                     refill, refillable, remove_layers, retire)

REFRESH_S = 1.0  # how often growing layers are redrawn during a run
LIVE_ROLE = "live detections"  # a hidden layer kept for the detections of the frame in view during long runs
PREVIEW_MARKER = 1.6  # its rings this many times a run's: the two are told apart where both find an emitter


class Cancelled(Exception):
    """Raised inside a job when the user pressed Cancel."""


HINT_AFTER_S = 300  # a run with more than this left (s) is told its hint (Progress)


class Progress:
    """Frames done (and through the network, ahead of their refinement), written by the job's
    thread and read by the GUI's timer; `stop` set asks the job to stop at its next batch.
    `doing` starts what describe() says (e.g. "estimating the PSF sigma: "); `hint` ends it while
    more than HINT_AFTER_S are left (e.g. that another model runs faster)."""

    def __init__(self, total: int, already_done: int = 0, doing: str = "", hint: str = "") -> None:
        self.total, self.done, self.already_done, self.seen = total, already_done, already_done, already_done
        self.doing, self.hint = doing, hint
        self.started = time.perf_counter()
        self.stop = threading.Event()
        self._chunk_start = already_done

    def chunk(self, start_done: int):
        """A predict_frames progress callback for a chunk whose first frame is the
        `start_done`-th of the run."""
        self._chunk_start = start_done

        def report(done_in_chunk: int, n: int, seen_in_chunk: float | None = None) -> None:
            self.done = self._chunk_start + done_in_chunk
            self.seen = max(self.done, self._chunk_start + (seen_in_chunk or 0))
            if self.stop.is_set() and done_in_chunk < n:  # a finished chunk is kept
                raise Cancelled
        return report

    def rate(self) -> float:
        """Frames per second through the network in this session's part of the run (0 until a
        batch is through)."""
        elapsed = time.perf_counter() - self.started
        return (max(self.done, self.seen) - self.already_done) / elapsed if elapsed > 0 else 0.0

    def describe(self) -> str:
        rate = self.rate()
        text = f"{self.doing}{self.done:,} / {self.total:,} frames"
        if int(self.seen) > self.done:
            text += f" ({int(self.seen) - self.done:,} more through the network, being refined)"
        if self.done < self.total <= self.seen or 0 < self.total == self.done:
            text += " · finishing"  # every frame through the network: no rate or time left to say
        elif rate > 0:
            left = (self.total - max(self.done, self.seen)) / rate
            text += f" · {rate:.2f} frames/s · {duration(left)} left"
            if self.hint and left > HINT_AFTER_S:
                text += f" · {self.hint}"
        elif not fits_compiled():
            text += " · preparing the fitting code (once after installing: about 15 s)"
        return text


def frame_job(model, frames, index: int, camera, options, progress: Progress):
    """Predict one frame in memory; yields (first frame, Prediction), or a message ("error: ...")
    if the camera model rejects the frame."""
    try:
        yield index, predict_frames(model, frames, camera, options, progress=progress.chunk(0), span=(index, index + 1))
    except InputError as exc:
        yield f"error: {exc}"
    except Cancelled:
        return


def movie_job(job: StackJob, progress: Progress):
    """Yield (first frame, Prediction) of each chunk a cancelled run saved (tables only), then run
    the chunks not done yet, yielding each; the localisation file is written when every chunk is;
    a message (str) ends it early. However it ends, the job's folder is let go (kept only with
    saved chunks, for a resume)."""
    done = progress.already_done
    try:
        for r, table in job.saved():
            yield r[0], Prediction(table, [], ())
        for r in job.todo():
            if progress.stop.is_set():
                return
            prediction = job.run(r, progress=progress.chunk(done))
            done += r[1] - r[0]
            yield r[0], prediction
        yield f"saved {job.finish():,} localisations to {job.out}"
    except InputError as exc:
        yield f"error: {exc}"
    except Cancelled:
        return
    finally:
        job.close()


def scale_map_name(source: str, s: int, strides_px: tuple[int, ...]) -> str:
    """The layer name of scale s's map: its token stride in camera pixels, and "refined" where it
    repeats the scale before's (a VAR model's last scales may share one grid)."""
    again = ", refined" if s and strides_px[s] == strides_px[s - 1] else ""
    return f"{source} scale {s} ({strides_px[s]} px{again})"


class RunLayers:
    """The layers of one prediction run, filled as chunks arrive (redrawn every REFRESH_S):
    detections as Points, and per-scale maps when asked for (just above the image, below the
    detections, all hidden: the one selected in the layer list is shown alone).

    While the run goes on, the Points layer holds the detections of the frame in view only (it
    follows the frame slider), and every detection once `finish()` is called at the end:
    napari re-validates and re-colours a whole layer on the GUI thread whenever its data change
    (~5 µs a point on 2 cores), which, repeated every second of a long movie, would take the
    model's CPU and freeze the viewer. A final table of BUILD_OFF_THREAD_FROM points or more
    goes into a new layer built off the GUI thread instead (layers.image_points)."""

    def __init__(self, viewer, layer, single: bool, first: int, span: int, shape_hw, strides, camera,
                 envelope: Envelope | None, with_maps: bool, psf_sigma_known: bool = False,
                 other_models: Sequence[tuple[str, Envelope]] = (), bin_px: int = 1,
                 previous: RunLayers | None = None, movie: bool = False, preview: bool = False) -> None:
        """strides: of the per-scale maps, in camera pixels; bin_px: the binning of the frames in
        front of the network (predict.canonical); previous: the last run's, whose layers this run
        takes over with its first chunk (until then they stay that run's: `previous` is None once
        taken over); movie: a run over frames, which brings the slider onto them (a preview of the
        frame in view leaves the slider where the user moved it meanwhile); preview: the live
        preview, whose detections go into a layer of their own (PREVIEW_ROLE): the last run's
        layers stay as they are, `previous` that run (a preview's own previous, where it follows one)."""
        if preview and previous is not None and previous.preview:
            previous = previous.previous
        self.previous, self.movie, self.preview = previous, movie, preview
        self.maps_connected = False
        self.viewer, self.single, self.first, self.camera, self.envelope = viewer, single, first, camera, envelope
        self.psf_sigma_known, self.other_models, self.bin_px = psf_sigma_known, other_models, bin_px
        self.image, self.span, self.shape_hw, self.strides, self.with_maps = layer, span, shape_hw, strides, with_maps
        self.tables: list[pd.DataFrame] = []
        self.concatenated: pd.DataFrame | None = None  # the tables as one, once asked for
        self.shown_frame: int | None = None  # the frame whose detections the Points layer holds
        self.px, self.last_draw, self.message = camera.pixel_size_nm, 0.0, ""
        self.options = (output_options(layer, single, "preview (frame in view)", PREVIEW_ROLE) if preview
                        else output_options(layer, single, "detections", "detections"))
        if preview:
            self.options["size"] *= PREVIEW_MARKER
        self.layer_builder = None  # the worker that builds a long run's final layer
        self.said = ("", "")  # the status line and warnings the widget gave of this run once it ended
        self.maps, self.points, self.following = [], None, False  # the layers, once the first chunk is in
        layer.visible = True  # a run shows the stack it runs on (show_alone may have hidden it)

    def _take_over(self) -> None:
        """Make this run's layers, when its first chunk arrives: a run that ends before that (a
        Cancel, an error) leaves the last run's results as they were."""
        if self.preview:
            self._preview_layer()
            return
        if self.previous is not None:  # a preview's layers and those of the run it lay beside
            self.previous.disconnect()
            if self.previous.preview and self.previous.previous is not None:
                self.previous.previous.disconnect()
            self.previous = None
        viewer, layer, single, dims = self.viewer, self.image, self.single, 2 if self.single else 3
        # a movie's first chunk brings the slider onto its frames (a run cancelled before it leaves the view
        # alone), before the slider is followed: a move then would draw the layers before the chunk is in
        if self.movie:
            frame_into_view(viewer, layer, (self.first, self.first + self.span))
        scale, translate = np.array(layer.scale[-dims:], float), np.array(layer.translate[-dims:], float)
        if not single:
            translate[0] += scale[0] * self.first  # maps hold frames first..last
        name = layer.name
        # layers of the last run are refilled, not replaced: napari's removal of a layer costs a
        # garbage collection (~0.25 s of frozen viewer each); a long run's result is kept (retired).
        # Removed, all at once: those of the other dimensionality, and maps not asked for this time
        old = {(lay.metadata[TAG]["role"], lay.metadata[TAG].get("scale")): lay for lay in viewer.layers
               if lay.metadata.get(TAG, {}).get("source") == name
               and lay.metadata[TAG]["role"] in ("scale_map", "detections", LIVE_ROLE, "render", PREVIEW_ROLE)}
        n_maps = len(self.strides) if self.with_maps else 0
        # and the render of the last run's table, which would lie over this run's points, and a preview's
        stale = {key for key, lay in old.items() if lay.ndim != dims or key[0] in ("render", PREVIEW_ROLE)
                 or (key[0] == "scale_map" and key[1] >= n_maps)}
        remove_layers(viewer, [old.pop(key) for key in stale])
        for made in outputs(viewer, ANALYSIS_OUTPUTS, name):
            retire(made)  # made of the last run's localisations: it stood beside this run's, out of date unsaid
        for s, stride in enumerate(self.strides[:n_maps]):
            shape = (-(-self.shape_hw[0] // stride), -(-self.shape_hw[1] // stride))
            map_scale, map_translate = map_placement(scale, translate, stride)
            data = np.zeros(shape if single else (self.span, *shape), np.float32)
            looks = {"scale": map_scale, "translate": map_translate, "visible": False}
            reused = old.pop(("scale_map", s), None)
            if reused is None:
                reused = viewer.add_image(
                    data, name=scale_map_name(name, s, self.strides), colormap="inferno", contrast_limits=(0.0, 1.0),
                    opacity=0.5, blending="translucent", **looks,
                    metadata={TAG: {"role": "scale_map", "source": name, "scale": s, "stride_px": stride}})
                if layer in viewer.layers:  # just above the image, below the detections and anything else
                    viewer.layers.move(viewer.layers.index(reused), viewer.layers.index(layer) + 1 + s)
            else:
                reused.data = data
                for key, value in looks.items():
                    setattr(reused, key, value)
            self.maps.append(reused)
        if self.with_maps:
            viewer.layers.selection.events.active.connect(self._show_selected_map)
            self.maps_connected = True
        viewer.dims.events.current_step.connect(self._frame_changed)
        self.following = True
        empty = pd.DataFrame({c: pd.Series(dtype=float) for c in ("frame", "x_nm", "y_nm", "probability")})
        self.points = old.pop(("detections", None), None)
        if self.points is not None and not refillable(self.points, dims):  # same dims here: removed above
            retire(self.points)  # emptying it would freeze the viewer longer than napari's removal
            self.points = None
        live = old.pop((LIVE_ROLE, None), None)  # the layer a long run's detections followed the slider in
        if self.points is None and live is not None:
            self.points = live
            live.name, live.visible, live.metadata[TAG]["role"] = self.options["name"], True, "detections"
        if self.points is None:
            self.points = viewer.add_points(np.zeros((0, dims)), **points_kwargs(empty, **self.options))
        else:  # shown first: napari's hidden layers keep a stale view that new data would index out of range
            self.points.visible = True
            self.points.scale, self.points.translate = self.options["scale"], self.options["translate"]
            self.points.data, self.points.features = np.zeros((0, dims)), layer_features(empty)
        viewer.layers.selection.active = self.points  # its controls in view, not a hidden map's just added

    def _preview_layer(self) -> None:
        """The live preview's Points layer over the image: the last preview's, refilled, else a new one."""
        dims, empty = 2 if self.single else 3, pd.DataFrame({c: pd.Series(dtype=float) for c in ("x_nm", "y_nm")})
        old = outputs(self.viewer, (PREVIEW_ROLE,), self.image.name)
        self.points = next((lay for lay in old if lay.ndim == dims), None)
        remove_layers(self.viewer, [lay for lay in old if lay is not self.points])
        if self.points is None:
            self.points = self.viewer.add_points(np.zeros((0, dims)), **points_kwargs(empty, **self.options))
        self.points.visible = True  # in the image's placement now (a pixel size entered since rescaled it)
        self.points.scale, self.points.translate = self.options["scale"], self.options["translate"]

    def add(self, first_frame: int, prediction) -> None:
        if self.points is None:
            self._take_over()
        self.tables.append(prediction.table)
        self.concatenated = None
        self.shown_frame = None  # its frame may have just arrived
        for layer, scale_map in zip(self.maps, prediction.scale_maps):
            if self.single:
                layer.data = scale_map[0]
            else:
                offset = first_frame - self.first
                layer.data[offset:offset + len(scale_map)] = scale_map
        if time.perf_counter() - self.last_draw > REFRESH_S:
            self.flush()

    def _show_selected_map(self, event) -> None:
        """The map selected in the layer list is shown alone. By name: a widget opened from napari's
        Plugins menu holds its layers through napari's proxy, which is not the layer the event names."""
        chosen = getattr(event.value, "name", None)
        if chosen in {layer.name for layer in self.maps}:
            for layer in self.maps:
                layer.visible = layer.name == chosen

    def envelope_warnings(self) -> list[str]:
        """Where the stack, the camera or the measured photons and background lie outside what the model was trained
        on."""
        if self.envelope is None:
            return []
        return (self.envelope.stack_warnings(self.image.name)
                + self.envelope.camera_warnings(self.camera, self.psf_sigma_known)
                + self.envelope.measured_warnings(self.table(), self.camera, self.other_models, self.bin_px))

    def table(self) -> pd.DataFrame:
        """Every detection so far (concatenated once per chunk arrived)."""
        if self.concatenated is None:
            tables = [t for t in self.tables if len(t)]
            self.concatenated = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
        return self.concatenated

    def flush(self) -> None:
        """Redraw the maps and show the detections that have arrived of the frame in view."""
        self.last_draw = time.perf_counter()
        for layer in self.maps:
            layer.refresh()
        frame = self.first if self.single else frame_in_view(self.viewer, self.image)
        if frame != self.shown_frame:
            self.shown_frame = frame
            self._show(pd.concat([t[t["frame"] == frame] for t in self.tables if len(t)] or [pd.DataFrame()],
                                 ignore_index=True))

    def _frame_changed(self, _event=None) -> None:
        self.flush()

    def _stop_following(self) -> None:
        if self.following:
            self.viewer.dims.events.current_step.disconnect(self._frame_changed)
            self.following = False

    def _show(self, table: pd.DataFrame) -> None:
        refill(self.points, table, self.px)

    def finish(self, done: Callable[[], None]) -> None:
        """The run is over: every detection in a Points layer, which no longer follows the slider;
        then `done()`. From BUILD_OFF_THREAD_FROM detections on, they go into a new layer built
        off the GUI thread (layers.image_points), and the layer that followed the slider is
        emptied, hidden and kept for the next run (LIVE_ROLE): napari's removal would freeze the
        viewer."""
        self._stop_following()
        if self.points is None:  # ended before its first chunk: the last run's layers stay
            done()
            return
        for layer in self.maps:
            layer.refresh()
        table = self.table()
        if len(table) < BUILD_OFF_THREAD_FROM:
            self.shown_frame = None
            self._show(table)
            done()
            return
        live = self.points

        def make_room() -> int:
            self._show(table.iloc[:0])
            live.visible, live.name = False, f"{self.image.name} detections (frame in view while predicting)"
            live.metadata[TAG]["role"] = LIVE_ROLE
            return self.viewer.layers.index(live) + 1 if live in self.viewer.layers else len(self.viewer.layers)

        def shown(points) -> None:
            self.points = points
            done()

        def not_shown(exc: Exception) -> None:
            self.message = f"the detections could not be shown ({exc}); the localisation file has them all"
            done()
        build = functools.partial(image_points, table, self.px, self.single, **self.options)
        self.layer_builder = insert_built(self.viewer, build, make_room, shown, not_shown)

    def disconnect(self) -> None:
        """This run's layers are taken over by the next run."""
        self._stop_following()
        if self.maps_connected:
            self.viewer.layers.selection.events.active.disconnect(self._show_selected_map)
            self.maps_connected = False

    def discard(self) -> None:
        """The run failed before it found anything: its layers, empty, go (one garbage collection)."""
        self.disconnect()
        remove_layers(self.viewer, [layer for layer in [*self.maps, self.points]
                                    if layer is not None and layer in self.viewer.layers])
        self.maps, self.points = [], None


def duration(seconds: float) -> str:
    """'42 s', '3 min 05 s', '1 h 20 min'."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
