"""The "Fine-tune model" widget: on trusted positions, or on simulations matched to the stack."""

from __future__ import annotations

import time
from pathlib import Path

import napari
from magicgui.widgets import ComboBox, Container, FileEdit, FloatSpinBox, RadioButtons, SpinBox
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.layers import Image, Points
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info

from ..errors import InputError
from ..io.localizations import read_localizations
from ..model.checkpoint import resolve_device
from ..predict.model_cache import cached_model
from ..train.calibrate import estimate_conditions, ranges_for
from ..train.config import TrainConfig, TrainingConfig
from ..train.data import LabelledSource, SimulatedSource
from ..train.loop import training_steps
from .camera_fields import CameraFields
from .job_controls import JobControls
from .layers import layer_choices, stack_of, table_from_points
from .models import MODELS

MODES = ("self-calibrated", "trusted positions")


def finetune_job(make_source, steps: int, lr: float, out_dir: Path, device: str, init: Path):
    """Yield {"conditions": ...} or {"error": ...} first, then each training step's log row;
    returns the new weights' path."""
    try:
        source, conditions = make_source()
    except InputError as exc:
        yield {"error": str(exc)}
        return None
    yield {"conditions": conditions}
    config = fine_tune_config(steps, lr, getattr(source, "ranges", None))
    return (yield from training_steps(config, out_dir, source, device, init_weights=init, log=lambda _: None))


def fine_tune_config(steps: int, lr: float, simulation) -> TrainConfig:
    """Main stage only (the tokenizer is kept), a short warm-up, checkpoints every quarter."""
    training = TrainingConfig(tokenizer_steps=0, steps=steps, batch_size=8, lr=lr, warmup_steps=max(1, steps // 10),
                              eval_every=10**9, checkpoint_every=max(1, steps // 4))
    return TrainConfig(training=training, **({"simulation": simulation} if simulation is not None else {}))


class FineTuneWidget(JobControls, Container):
    """Fine-tune a model on this microscope's data; the result joins the Predict widget's models."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self.viewer, self.out_path = viewer, None
        self.mode = RadioButtons(label="training data", choices=MODES, value=MODES[0])
        self.image = ComboBox(label="image", choices=layer_choices(viewer, Image))
        self.camera_fields = CameraFields(viewer)
        self.positions = ComboBox(label="trusted positions", choices=layer_choices(viewer, Points), nullable=True)
        self.labels_file = FileEdit(label="or labels file", filter="*.csv *.h5 *.hdf5", mode="r")
        self.model = ComboBox(label="start from", choices=MODELS.choices)
        self.steps = SpinBox(label="steps", value=300, min=1, max=100_000)
        self.lr = FloatSpinBox(label="learning rate", value=2e-4, min=1e-6, max=1e-2, step=1e-5)
        self.lr.native.setDecimals(6)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.out_dir = FileEdit(label="output folder", mode="d", value=Path.home() / "var-emitter-models" / stamp)
        self.device = ComboBox(label="device", choices=("auto", "cpu", "cuda"), value="auto")
        super().__init__(widgets=[self.mode, self.image, self.camera_fields, self.positions, self.labels_file,
                                  self.model, self.steps, self.lr, self.out_dir, self.device,
                                  *self._job_controls("Fine-tune")])
        self.figure = Figure(figsize=(4, 2.2), tight_layout=True)
        self.axes = self.figure.add_subplot()
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(180)
        self.native.layout().addWidget(self.canvas)
        self.losses: list[tuple[int, float]] = []
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(self.image.reset_choices)
            event.connect(self.positions.reset_choices)
        MODELS.changed.connect(self.model.reset_choices)
        self.image.changed.connect(self.camera_fields.fill_from)
        self.run_button.changed.connect(self.start)
        self.camera_fields.fill_from(self.image.value)

    def _source_maker(self, config_model, model):
        """A function (run in the worker) that returns (batch source, conditions summary)."""
        layer = self.image.value
        if layer is None:
            raise InputError("open the image stack to fine-tune on first")
        frames, _ = stack_of(layer)
        camera = self.camera_fields.camera()
        if self.mode.value == "trusted positions":
            labels = self._trusted_positions()
            source = LabelledSource([(frames, labels, camera)], config_model, 64, seed=0)
            return lambda: (source, {"labelled emitters": len(labels)})

        def calibrated():
            conditions = estimate_conditions(frames, camera, model)
            source = SimulatedSource(ranges_for(conditions, camera), config_model, 64, seed=0)
            return source, conditions
        return calibrated

    def _trusted_positions(self):
        path = Path(self.labels_file.value)
        if path.is_file():
            return read_localizations(path)
        points = self.positions.value
        if points is None:
            raise InputError("trusted positions: pick a Points layer or a labels file (CSV or emitters.h5)")
        return table_from_points(points.data, points.features, points.scale, points.translate)

    def start(self) -> None:
        if self.worker is not None:
            return
        try:
            out_dir = Path(self.out_dir.value)
            if (out_dir / "model.safetensors").exists():
                raise InputError(f"{out_dir} already holds a model: choose a new output folder "
                                 "(nothing is overwritten)")
            device = resolve_device(self.device.value)
            init = self.model.value
            model, _ = cached_model(init, "cpu")
            make_source = self._source_maker(model.config, model)
        except InputError as exc:
            show_error(str(exc))
            return
        self.out_path, self.losses = out_dir, []
        worker = create_worker(finetune_job, make_source, self.steps.value, self.lr.value, out_dir, device, init,
                               _start_thread=False,
                               _connect={"yielded": self._on_row, "returned": self._on_done,
                                         "finished": self._on_finished, "errored": self._on_error})
        self._launch(worker, self.steps.value,
                     "estimating the stack's conditions…" if self.mode.value == MODES[0] else "training…")

    def _on_row(self, row: dict) -> None:
        if "error" in row:
            show_error(row["error"])
            return
        if "conditions" in row:
            self.status.value = "training on: " + ", ".join(
                f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in row["conditions"].items())
            return
        self.progress.value = row["step"] + 1
        self.losses.append((row["step"], row["loss"]))
        if row["step"] % 10 == 0 or row["step"] + 1 == self.steps.value:
            self.axes.clear()
            self.axes.plot(*zip(*self.losses), lw=1)
            self.axes.set(xlabel="step", ylabel="loss", title="fine-tuning loss")
            self.canvas.draw_idle()

    def _on_done(self, path) -> None:
        if path is not None:
            MODELS.add(path)
            show_info(f"fine-tuned model saved: {path} (now in the Predict widget's model list)")

    def _on_error(self, exc: Exception) -> None:
        self.status.value = f"failed: {exc}"

    def _on_finished(self) -> None:
        self._job_ended()
        if self.out_path is not None and (self.out_path / "model.safetensors").exists():
            self.status.value = f"saved {self.out_path / 'model.safetensors'}"
        elif not self.status.value.startswith("failed"):
            self.status.value = "stopped: no model written"
