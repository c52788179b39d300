"""The "Fine-tune model" widget: on trusted positions, or on simulations matched to the stack."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, FloatSpinBox, Label, RadioButtons, SpinBox, TextEdit
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.layers import Image, Points
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info

from ..analysis.plots import style
from ..errors import InputError
from ..io.atomic import write_text_atomic
from ..io.camera_profile import config_dir
from ..io.localizations import read_localizations
from ..model.checkpoint import resolve_device
from ..predict.model_cache import cached_model
from ..train.calibrate import BRIGHT_QUANTILE, CALIBRATION_FRAMES, self_calibrated_source, trusted_positions_source
from ..train.compare import compare_models, held_out_start, verdict
from ..train.config import TrainConfig, TrainingConfig
from ..train.loop import LOG_FILE, STATE_FILE, training_steps
from .camera_fields import CameraFields
from .dock import ScrollingDock, fixed_width_combo
from .job_controls import JobControls
from .layers import layer_choices, opened_beside, pick_shown, stack_of, table_from_layer, view_alone
from .models import MODELS
from .predict_run import Cancelled, Progress, duration
from .settings import Settings, add_sections, restore_button
from .theme import theme_colours

MODES = ("self-calibrated", "trusted positions")
COMPARISON_WRAP = 44  # characters per line of the comparison's prose (about the dock's width)


def finetune_job(make_source, steps: int, lr: float, out_dir: Path, device: str, init: Path, compare,
                 fine_tuned_on: dict):
    """Yield {"conditions": ...} or {"error": ...} first, then each training step's log row, then
    {"comparison": DataFrame} (before / after on held-out frames); returns the weights' path.
    make_source() gives (batch source, conditions, the ranges the card states or None);
    `compare(weights path, conditions)` makes the comparison; fine_tuned_on goes in the card."""
    try:
        source, conditions, ranges = make_source()
    except InputError as exc:
        yield {"error": str(exc)}
        return None
    except Cancelled:  # while estimating the stack's conditions
        return None
    yield {"conditions": conditions}
    config = fine_tune_config(steps, lr, ranges)
    path = yield from training_steps(config, out_dir, source, device, init_weights=init, log=lambda _: None,
                                     fine_tuned_on=fine_tuned_on)
    yield {"comparing": True}
    yield {"comparison": compare(path, conditions)}
    return path


def fine_tune_config(steps: int, lr: float, simulation) -> TrainConfig:
    """Main stage only (the tokenizer is kept), a short warm-up, checkpoints every quarter."""
    training = TrainingConfig(tokenizer_steps=0, steps=steps, batch_size=8, lr=lr, warmup_steps=max(1, steps // 10),
                              eval_every=10**9, checkpoint_every=max(1, steps // 4))
    return TrainConfig(training=training, **({"simulation": simulation} if simulation is not None else {}))


class FineTuneWidget(ScrollingDock, JobControls, Container):
    """Fine-tune a model on this microscope's data; the result joins the Predict widget's models,
    with a before/after comparison on frames it never saw."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self.viewer, self.out_path, self.started = viewer, None, 0.0
        self.mode = RadioButtons(label="training data", choices=MODES, value=MODES[0],
                                 tooltip="self-calibrated: simulations matched to this stack's PSF, photons, "
                                 "background and density; trusted positions: localisations you trust")
        self.image = ComboBox(label="image", choices=layer_choices(viewer, Image, inputs_only=True),
                              tooltip="The camera stack (ADU); its last fifth (up to 20 frames) is kept aside "
                              "for the before/after comparison")
        pick_shown(self.image)
        self.camera_fields = CameraFields(viewer)
        self.positions = ComboBox(label="trusted positions", choices=layer_choices(viewer, Points), nullable=True)
        self.labels_file = FileEdit(label="or labels file", filter="*.csv *.h5 *.hdf5", mode="r",
                                    tooltip="Localisations in any layout the readers take, with photons")
        self.model = ComboBox(label="start from", choices=MODELS.choices)
        for combo in (self.image, self.positions, self.model):  # long layer and model names do not widen the dock
            fixed_width_combo(combo)
        self.steps = SpinBox(label="steps", value=300, min=1, max=100_000, tooltip="Training steps of 8 tiles")
        self.lr = FloatSpinBox(label="learning rate", value=2e-4, min=1e-6, max=1e-2, step=1e-5)
        self.lr.native.setDecimals(6)
        self.out_dir = FileEdit(label="output folder", mode="d", value=new_out_dir(),
                                tooltip="A new folder for the model (nothing is overwritten); a new one is "
                                "proposed after each model written")
        self.device = ComboBox(label="device", choices=("auto", "cpu", "cuda"), value="auto")
        self.time_estimate = Label(value="")
        self.estimates = Label(value="")
        self.comparison = TextEdit(value="", tooltip="Both models on the frames kept aside (train/compare.py)")
        self.comparison.native.setReadOnly(True)
        self.comparison.native.setStyleSheet("font-family: monospace")
        self.comparison.native.setMinimumHeight(170)
        self.comparison.native.setLineWrapMode(self.comparison.native.LineWrapMode.NoWrap)
        for label in (self.time_estimate, self.estimates):
            label.native.setWordWrap(True)
        self.settings = Settings("finetune", {"mode": self.mode, "steps": self.steps, "lr": self.lr,
                                              "device": self.device})
        self.figure = Figure(figsize=(4, 2.2), tight_layout=True)
        self.axes = self.figure.add_subplot()
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(180)
        super().__init__(widgets=[], scrollable=True)
        add_sections(self, {
            "Data": [self.mode, self.image, self.positions, self.labels_file],
            "Camera": [self.camera_fields],
            "Training": [self.model, self.steps, self.lr, self.out_dir, self.device, self.time_estimate],
            "Result": [self.estimates, self.comparison]})
        self.body.layout().addWidget(self.canvas)
        self.body.layout().addWidget(restore_button(self.settings).native)
        self.fit_width()
        self.make_dock(self._job_controls("Fine-tune"))  # Fine-tune, Cancel, progress and status always in view
        self.losses: list[tuple[int, float]] = []
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(self.image.reset_choices)
            event.connect(self.positions.reset_choices)
        viewer.layers.events.inserted.connect(self._layer_added)
        MODELS.offer_in(self.model)
        self.image.changed.connect(self.camera_fields.fill_from)
        self.image.changed.connect(self._image_chosen)
        self.run_button.changed.connect(self.start)
        self.steps.changed.connect(self._show_time_estimate)
        self.device.changed.connect(self._show_time_estimate)
        viewer.events.theme.connect(lambda _: self._draw_losses())
        self.camera_fields.fill_from(self.image.value)
        self._show_time_estimate()

    # ---- time per step, measured here and kept --------------------------------------------
    def _show_time_estimate(self, *_) -> None:
        device = resolve_device(self.device.value) if self.device.value != "cuda" else "cuda"
        seconds = step_seconds().get(device)
        if seconds is None:
            self.time_estimate.value = (f"Time per step on {device} not measured here yet: the estimate appears "
                                        "after the first steps.")
        else:
            steps = f"{self.steps.value} step" + ("s" if self.steps.value != 1 else "")
            self.time_estimate.value = (f"About {duration(seconds * self.steps.value)} for {steps} on {device} "
                                        f"({seconds:.2f} s/step, measured here last time).")

    # ---- data -------------------------------------------------------------------------------
    def _layer_added(self, event) -> None:
        """A stack the user opens becomes the one to fine-tune on, as in the Predict widget (a
        single image of the chosen stack's frame size is opened beside it)."""
        self.image.reset_choices()
        if event.value in self.image.choices and not opened_beside(event.value, self.image.value):
            self.image.value = event.value

    def _image_chosen(self, layer) -> None:
        """The stack chosen is shown alone (layers.view_alone); the last fine-tune's estimates,
        comparison, losses and status, which say nothing about it, are cleared (a running job's
        stay until it ends)."""
        if layer is not None:
            view_alone(self.viewer, layer, self.image.choices)
        if self.worker is None:
            self._forget_last_run()
            self.estimates.value = self.comparison.value = ""
            self.losses = []
            self._draw_losses()

    def _source_maker(self, model, frames, camera, progress):
        """A function (run in the worker) that returns (batch source, conditions, the ranges the
        card states); frames are the ones to train (or calibrate) on, the held-out ones excluded.
        Either way the network trains in the geometry it sees the stack in (train.calibrate), and
        the conditions are estimated first (`progress`: its callback, which a Cancel makes raise)."""
        if self.mode.value == "trusted positions":
            labels = self._trusted_positions()
            labels = labels[labels["frame"] < len(frames)]
            return lambda: trusted_positions_source(frames, labels, camera, model, progress)
        return lambda: self_calibrated_source(frames, camera, model, progress)

    def _trusted_positions(self):
        path = Path(self.labels_file.value)
        if path.is_file():
            return read_localizations(path)
        points = self.positions.value
        if points is None:
            raise InputError("trusted positions: pick a Points layer or a labels file (CSV or emitters.h5)")
        return table_from_layer(points)

    def start(self) -> None:
        if self.worker is not None:
            return
        try:
            out_dir = Path(self.out_dir.value)
            if (out_dir / "model.safetensors").exists():
                raise InputError(f"{out_dir} already holds a model: choose a new output folder "
                                 "(nothing is overwritten)")
            if any((out_dir / name).exists() for name in (LOG_FILE, STATE_FILE)):
                raise InputError(f"{out_dir} already holds a training run's log or checkpoint: choose a new output "
                                 "folder (nothing is overwritten)")
            device = resolve_device(self.device.value)
            init = self.model.value
            model, _ = cached_model(init, "cpu")
            layer = self.image.value
            if layer is None:
                raise InputError("open the image stack to fine-tune on first")
            frames, _ = stack_of(layer)
            camera = self.camera_fields.camera_of(layer)
            cut = held_out_start(frames.shape[0])
            train_frames, held_out = (frames[:cut], frames[cut:]) if cut else (frames, frames)
            # the conditions first: network, then fits, on up to CALIBRATION_FRAMES frames
            estimating = Progress(2 * min(CALIBRATION_FRAMES, len(train_frames)),
                                  doing="estimating the stack's conditions (network, then fits): ")
            make_source = self._source_maker(model, train_frames, camera, estimating.chunk(0))
        except InputError as exc:
            show_error(str(exc))
            return

        def compare(path, conditions):
            models = {"before": cached_model(init, device)[0], "after": cached_model(path, device)[0]}
            return compare_models(held_out, camera, models, conditions.get("psf_sigma_nm"))

        self.out_path, self.losses, self.device_used = out_dir, [], device
        self.made_out_dir = not out_dir.exists()  # a stopped run removes the folder only if it made it
        self.estimates.value = self.comparison.value = ""
        self.held_out_note = (f"frames {cut + 1}-{frames.shape[0]} (1-based), never trained or calibrated on" if cut
                              else "the one frame there is (also trained on)")
        worker = create_worker(finetune_job, make_source, self.steps.value, self.lr.value, out_dir, device, init,
                               compare, {"stack": layer.name, "data": self.mode.value}, _start_thread=False,
                               _connect={"yielded": self._on_row, "returned": self._on_done,
                                         "finished": self._on_finished, "errored": self._on_error})
        self.job_progress = estimating
        self._launch(worker, estimating.total, "estimating the stack's conditions…")

    # ---- progress and result ----------------------------------------------------------------
    def _on_row(self, row: dict) -> None:
        if "error" in row:
            show_error(row["error"])
            return
        if "conditions" in row:  # the estimate is over: the bar counts steps now
            self.progress_timer.stop()
            self.job_progress = None
            self.progress.max, self.progress.value = self.steps.value, 0
            self.estimates.value = describe_conditions(row["conditions"])
            self.status.value, self.started = "training…", time.perf_counter()
            return
        if "comparing" in row:
            self.status.value = f"comparing the two models on {self.held_out_note}…"
            return
        if "comparison" in row:  # the verdict in view: the box as tall as its text, scrolled down to its end
            self.comparison.value = comparison_text(row["comparison"], self.held_out_note)
            box = self.comparison.native
            lines = self.comparison.value.count("\n") + 2  # and a line of the editor's margins
            box.setMinimumHeight(box.fontMetrics().lineSpacing() * lines + 2 * box.frameWidth() + 12)
            bottom = box.mapTo(self.body, box.rect().bottomLeft()).y()
            self.scroll_area.ensureVisible(0, bottom, 0, 12)  # down to the verdict, its last lines
            return
        done = row["step"] + 1
        self.progress.value = done
        per_step = row["wall_s"] / done
        self.status.value = (f"step {done} / {self.steps.value} · {per_step:.2f} s/step · "
                             f"{duration(per_step * (self.steps.value - done))} left")
        self.losses.append((row["step"], row["loss"]))
        if done == self.steps.value or done % 10 == 0:
            remember_step_seconds(self.device_used, per_step)
            self._show_time_estimate()  # measured now: the first run's "not measured here yet" goes
            self._draw_losses()

    def _draw_losses(self) -> None:
        """The loss per step (faint) and its running mean over 20 steps, in napari's theme colours."""
        colours = theme_colours(self.viewer)
        self.figure.set_facecolor(colours.background)
        self.axes.clear()
        if self.losses:
            steps, losses = np.array(self.losses).T
            self.axes.plot(steps, losses, lw=0.8, color=colours.foreground, alpha=0.35, label="per step")
            window = min(20, max(1, len(losses) // 2))  # a line of at least two points
            smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
            self.axes.plot(steps[window - 1:], smooth, lw=1.5, color=colours.accent, label=f"mean of {window}")
            self.axes.legend(fontsize=7, facecolor=colours.background, labelcolor=colours.foreground,
                             edgecolor=colours.foreground)
        self.axes.set_xlabel("step")
        self.axes.set_ylabel("training loss\n(lower is better; < 0 is fine)", fontsize=8)
        style(self.axes, colours, tick_size=None)
        self.canvas.draw_idle()

    def _on_done(self, path) -> None:
        if path is not None:
            MODELS.add(path)
            show_info(f"fine-tuned model saved: {path} (now in the Predict widget's model list)")

    def _on_error(self, exc: Exception) -> None:
        self.status.value = f"failed: {exc}"

    def _on_finished(self) -> None:
        self._job_ended()
        self._show_time_estimate()
        if self.out_path is not None and (self.out_path / "model.safetensors").exists():
            self.status.value = f"saved {self.out_path / 'model.safetensors'}"
            if Path(self.out_dir.value) == self.out_path:  # the next fine-tune goes to a new folder
                self.out_dir.value = new_out_dir()
        elif not self.status.value.startswith("failed"):  # a failed run's log stays, to say what happened
            self.status.value = "stopped: no model written"
            self.progress.value = 0  # nothing done stays shown as done
            _remove_unfinished_run(self.out_path, self.made_out_dir)


def new_out_dir() -> Path:
    """A folder for a fine-tuned model, named by the time: ~/var-emitter-models/YYYYMMDD-HHMMSS
    (-2, -3, … where that exists)."""
    base = Path.home() / "var-emitter-models" / time.strftime("%Y%m%d-%H%M%S")
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def describe_conditions(conditions: dict) -> str:
    """The estimated conditions in words with units."""
    words = {"psf_sigma_nm": "PSF σ {:.0f} nm", "photons": "photons {:,.0f}",
             "photons_bright": f"the brightest {100 * (1 - BRIGHT_QUANTILE):.0f} % above {{:,.0f}}",
             "background_photons": "background {:.1f} photons/px", "density_per_um2": "density {:.2f} /µm²",
             "labelled emitters": "{:,} labelled emitters"}
    parts = [words[k].format(v) for k, v in conditions.items() if k in words]
    if "spots" in conditions:
        parts.append(f"from {conditions['spots']} spots in {conditions['frames']} frames")
    binned = conditions.get("bin_px", 1)
    seen = f"; the model sees it binned {binned}×{binned} and is fine-tuned so" if binned > 1 else ""
    return "Estimated from the stack: " + ", ".join(parts) + seen


def comparison_text(table, held_out: str) -> str:
    """The before/after table (aligned for a monospaced label) and the verdict, the prose wrapped
    to the table's width so the dock need not scroll sideways."""
    width = max(map(len, table.index))
    columns = [f"{'':<{width}}" + "".join(f"{c:>9}" for c in table.columns)]
    columns += [f"{name:<{width}}" + "".join(f"{_figure(value):>9}" for value in values)
                for name, values in table.iterrows()]
    wrap = max(len(columns[0]), COMPARISON_WRAP)
    intro = (f"Before / after on {held_out} (uncertainty and probability: medians; residual: mean (data - "
             "redrawn)² / redrawn, 1 = shot noise only):")
    closing = [textwrap.fill(sentence, wrap) for sentence in verdict(table).split(". ")]
    return "\n".join([textwrap.fill(intro, wrap), *columns, ".\n".join(closing)])


def _figure(value: float) -> str:
    """A table's figure to three significant digits, thousands written out (3,420 photons, not 3.42e+03)."""
    rounded = float(f"{value:.3g}")  # 999.7 is 1,000
    return f"{rounded:,.0f}" if abs(rounded) >= 1000 else f"{value:.3g}"


def _remove_unfinished_run(folder: Path | None, made: bool) -> None:
    """The log and checkpoint a fine-tune stopped before its model wrote into `folder` (the widget never
    resumes a run; start() takes no folder that held them), and the folder if the run `made` it and
    nothing else is in it."""
    if folder is None:
        return
    for name in (LOG_FILE, STATE_FILE):
        (folder / name).unlink(missing_ok=True)
    if made:
        try:
            folder.rmdir()
        except OSError:  # other files there, or gone already
            pass


def step_seconds() -> dict[str, float]:
    """Seconds per fine-tuning step measured on this machine, per device."""
    try:
        return dict(json.loads(_timing_path().read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return {}


def remember_step_seconds(device: str, seconds: float) -> None:
    path = _timing_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps({**step_seconds(), device: round(seconds, 3)}))


def _timing_path() -> Path:
    return config_dir() / "finetune_step_seconds.json"
