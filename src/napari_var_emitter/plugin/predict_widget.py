"""The "Predict emitters" widget: bundled or chosen model, off the GUI thread, layers per scale."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import napari
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, PushButton, SpinBox
from napari.layers import Image, Points
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning

from ..errors import InputError
from ..io.localizations_csv import write_localizations_csv
from ..model.config import DEFAULT_THRESHOLD
from ..predict.envelope import Envelope
from ..predict.frames import predict_frames
from ..predict.model_cache import cached_model
from ..predict.options import PredictOptions
from ..render import METHODS, render
from .camera_fields import CameraFields
from .job_controls import JobControls
from .layers import TAG, layer_choices, map_placement, points_data, points_kwargs, stack_of, table_from_points
from .models import MODELS

FRAME_MODES = ("current frame", "all frames", "range")
REFRESH_S = 0.5  # how often growing layers are redrawn during a run


def predict_job(frames, indices, camera, model, options: PredictOptions):
    """Yield (frame index, Prediction) frame by frame, so a Cancel stops within one frame; a
    frame the camera model rejects (NaN, inf) ends the run with its message (a str)."""
    for i in indices:
        try:
            yield i, predict_frames(model, frames[i:i + 1], camera, options, first_frame=i)
        except InputError as exc:
            yield str(exc)
            return


class PredictWidget(JobControls, Container):
    """Pick an image, camera, model, threshold, frames and device; Predict fills a Points layer
    and (optionally) one Image layer per scale, placed over the image; Export CSV; Render."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self.viewer = viewer
        self.image = ComboBox(label="image", choices=layer_choices(viewer, Image))
        self.camera_fields = CameraFields()
        self.model = ComboBox(label="model", choices=MODELS.choices)
        self.checkpoint = FileEdit(label="add checkpoint", filter="*.safetensors", mode="r")
        self.threshold = FloatSpinBox(label="threshold", value=DEFAULT_THRESHOLD, min=0.05, max=0.95, step=0.05)
        self.frames = ComboBox(label="frames", choices=FRAME_MODES, value="current frame")
        self.first = SpinBox(label="first frame", min=0, max=10**8)
        self.last = SpinBox(label="last frame", min=0, max=10**8)
        self.device = ComboBox(label="device", choices=("auto", "cpu", "cuda"), value="auto")
        self.show_maps = CheckBox(text="show per-scale maps", value=True)
        job_controls = self._job_controls("Predict")
        self.csv_path = FileEdit(label="CSV", mode="w", filter="*.csv")
        self.export_button = PushButton(text="Export CSV")
        self.render_nm = FloatSpinBox(label="render nm/px", value=10.0, min=1.0, max=1000.0)
        self.render_method = ComboBox(label="render", choices=METHODS, value="gaussian")
        self.render_button = PushButton(text="Render super-resolution")
        super().__init__(widgets=[
            self.image, self.camera_fields, self.model, self.checkpoint, self.threshold, self.frames, self.first,
            self.last, self.device, self.show_maps, *job_controls, self.csv_path, self.export_button,
            self.render_nm, self.render_method, self.render_button])
        self.image.changed.connect(self._fill_camera)
        self.checkpoint.changed.connect(self._add_checkpoint)
        MODELS.changed.connect(self.model.reset_choices)
        viewer.layers.events.inserted.connect(self.image.reset_choices)
        viewer.layers.events.removed.connect(self.image.reset_choices)
        self.run_button.changed.connect(self.start)
        self.export_button.changed.connect(self.export_csv)
        self.render_button.changed.connect(self.render_image)
        self._fill_camera(self.image.value)

    # ---- inputs -------------------------------------------------------------------------
    def _fill_camera(self, layer) -> None:
        missing = self.camera_fields.fill_from(layer)
        self.status.value = f"camera: {', '.join(missing)} not in the file; check them" if missing else ""

    def _add_checkpoint(self, path) -> None:
        if path and Path(path).is_file():
            self.model.value = MODELS.add(path)

    def _frame_indices(self, layer, n_frames: int) -> list[int]:
        if self.frames.value == "all frames":
            return list(range(n_frames))
        if self.frames.value == "range":
            if not 0 <= self.first.value <= self.last.value < n_frames:
                raise InputError(f"frame range {self.first.value}..{self.last.value} is outside 0..{n_frames - 1}")
            return list(range(self.first.value, self.last.value + 1))
        point = self.viewer.dims.point[-layer.ndim:]
        current = int(round(layer.world_to_data(point)[-3])) if layer.ndim >= 3 else 0
        return [min(max(current, 0), n_frames - 1)]

    # ---- running --------------------------------------------------------------------------
    def start(self) -> None:
        """Check the inputs (a clear notification for each problem), then predict off the GUI thread."""
        if self.worker is not None:
            return
        try:
            layer = self.image.value
            if layer is None:
                raise InputError("open an image stack first (File > Open, or the sample data)")
            frames, single = stack_of(layer)
            camera = self.camera_fields.camera()
            indices = self._frame_indices(layer, frames.shape[0])
            options = PredictOptions(model=self.model.value, device=self.device.value, threshold=self.threshold.value)
            model, card = cached_model(options.model, options.device)
        except InputError as exc:
            show_error(str(exc))
            return
        if single:
            show_info(f"{layer.name!r} is a single 2D frame: predicting it as a one-frame stack")
        self._run = _Run(self, layer, frames, single, indices, camera, model, Envelope.from_card(card))
        worker = create_worker(predict_job, frames, indices, camera, model, options, _start_thread=False,
                               _connect={"yielded": self._run.add, "errored": self._failed,
                                         "finished": self._finished})
        self._launch(worker, len(indices), f"predicting {len(indices)} frame(s)…")

    def _failed(self, exc: Exception) -> None:
        self.status.value = f"failed: {exc}"

    def _finished(self) -> None:
        run = self._run
        self._job_ended()
        run.flush()
        done = "done:" if run.done == len(run.indices) else "cancelled after"
        if run.error:
            done = f"stopped ({run.error}),"
        self.status.value = f"{done} {run.done} frame(s), {len(run.table())} localisations"
        warnings = run.envelope_warnings()
        if warnings:
            self.status.value += f"; {len(warnings)} warning(s): data outside the model's training ranges"
            for message in warnings:
                show_warning(message)

    # ---- outputs --------------------------------------------------------------------------
    def _detections(self) -> Points | None:
        layer = self.image.value
        for candidate in self.viewer.layers:
            meta = candidate.metadata.get(TAG, {})
            if meta.get("role") == "detections" and layer is not None and meta.get("source") == layer.name:
                return candidate
        return None

    def export_csv(self) -> None:
        points = self._detections()
        if points is None or not len(points.data):
            show_error("nothing to export: predict first")
            return
        path = Path(self.csv_path.value)
        if path.suffix.lower() != ".csv" or path.is_dir():
            show_error("choose a .csv file to export to")
            return
        write_localizations_csv(path, table_from_points(points.data, points.features, points.scale, points.translate))
        show_info(f"wrote {len(points.data)} localisations to {path}")

    def render_image(self) -> None:
        points, layer = self._detections(), self.image.value
        if points is None or not len(points.data):
            show_error("nothing to render: predict first")
            return
        px, (height, width) = self.camera_fields.camera().pixel_size_nm, layer.data.shape[-2:]
        table = table_from_points(points.data, points.features, points.scale, points.translate)
        image = render(table, (height * px, width * px), self.render_nm.value, self.render_method.value)
        ratio = self.render_nm.value / px  # render pixels per camera pixel
        scale, translate = np.array(layer.scale[-2:], float), np.array(layer.translate[-2:], float)
        _replace(self.viewer, layer.name, "render", image, {
            "name": f"{layer.name} super-resolution ({self.render_nm.value:g} nm/px)", "colormap": "hot",
            "scale": tuple(scale * ratio), "translate": tuple(translate + scale * (ratio / 2 - 0.5)),
            "contrast_limits": (0.0, float(max(np.percentile(image, 99.9), 1e-6)))}, "image")


class _Run:
    """The layers of one prediction run, filled as frames arrive (redrawn every REFRESH_S)."""

    def __init__(self, widget: PredictWidget, layer, frames, single: bool, indices, camera, model,
                 envelope: Envelope | None) -> None:
        self.widget, self.indices, self.single, self.done, self.error = widget, indices, single, 0, ""
        self.camera, self.envelope = camera, envelope
        self.tables: list[pd.DataFrame] = []
        self.px, self.last_draw = camera.pixel_size_nm, 0.0
        self.first = indices[0]
        dims = 2 if single else 3
        scale, translate = np.array(layer.scale[-dims:], float), np.array(layer.translate[-dims:], float)
        if not single:
            translate[0] += scale[0] * self.first  # maps hold frames first..last
        self.scale, self.translate = tuple(scale), tuple(translate)
        viewer, name = widget.viewer, layer.name
        remove_outputs(viewer, name, ("detections", "scale_map"))
        self.maps = []
        if widget.show_maps.value:
            span, (height, width) = indices[-1] - self.first + 1, frames.shape[1:]
            for s, stride in enumerate(model.config.token_strides_px):
                shape = (-(-height // stride), -(-width // stride))
                map_scale, map_translate = map_placement(scale, translate, stride)
                data = np.zeros(shape if single else (span, *shape), np.float32)
                self.maps.append(viewer.add_image(
                    data, name=f"{name} scale {s} ({stride} px)", scale=map_scale, translate=map_translate,
                    colormap="inferno", contrast_limits=(0.0, 1.0), opacity=0.6, blending="additive",
                    metadata={TAG: {"role": "scale_map", "source": name, "stride_px": stride}}))
        empty = pd.DataFrame({c: pd.Series(dtype=float) for c in ("frame", "x_nm", "y_nm", "probability")})
        self.points = viewer.add_points(np.zeros((0, dims)), **points_kwargs(
            empty, f"{name} detections", tuple(layer.scale[-dims:]), tuple(layer.translate[-dims:]), 2.5,
            "detections", name))

    def add(self, item) -> None:
        if isinstance(item, str):
            self.error = item
            show_error(item)
            return
        i, prediction = item
        self.tables.append(prediction.table)
        for layer, scale_map in zip(self.maps, prediction.scale_maps):
            if self.single:
                layer.data = scale_map[0]
            else:
                layer.data[i - self.first] = scale_map[0]
        self.done += 1
        self.widget.progress.value = self.done
        if time.perf_counter() - self.last_draw > REFRESH_S:
            self.flush()

    def envelope_warnings(self) -> list[str]:
        """Where the camera or the measured photons and background lie outside the model's training ranges."""
        if self.envelope is None:
            return []
        return self.envelope.camera_warnings(self.camera) + self.envelope.measured_warnings(self.table())

    def table(self) -> pd.DataFrame:
        tables = [t for t in self.tables if len(t)]
        return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()

    def flush(self) -> None:
        """Show everything that has arrived."""
        self.last_draw = time.perf_counter()
        for layer in self.maps:
            layer.refresh()
        table = self.table()
        if not len(table):
            return
        data = points_data(table, self.px)
        self.points.data = data[:, 1:] if self.single else data
        self.points.features = table
        self.points.border_color = "probability"


def remove_outputs(viewer, source: str, roles) -> None:
    """Remove the layers this plugin made from `source` in these roles (never anything else)."""
    for old in [lay for lay in viewer.layers if lay.metadata.get(TAG, {}).get("source") == source
                and lay.metadata[TAG].get("role") in roles]:
        viewer.layers.remove(old)


def _replace(viewer, source: str, role: str, data, kwargs: dict, kind: str):
    """Add a layer made from `source`, replacing the one this plugin made before in that role."""
    remove_outputs(viewer, source, (role,))
    kwargs["metadata"] = {TAG: {"role": role, "source": source}}
    return getattr(viewer, f"add_{kind}")(data, **kwargs)
