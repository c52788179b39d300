"""The "Predict emitters" widget: camera set-up, model, one frame (with a live preview) or a whole
movie through the CLI's chunked, resumable path, off the GUI thread; Export CSV; Render."""

from __future__ import annotations

import re
import threading
import weakref
from dataclasses import replace
from pathlib import Path

import numpy as np
import napari
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, PushButton, SpinBox
from napari.layers import Image
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QTimer

from ..errors import InputError
from ..fit.scoring import compile_fits, fits_compiled
from ..io.camera_check import check_camera_on_frames
from ..io.outputs import open_to_writing
from ..model.checkpoint import BUNDLED
from ..model.config import DEFAULT_THRESHOLD
from ..predict.envelope import Envelope, bundled_alternatives
from ..predict.frames import SigmaNote, run_bin_px, sigma_frames, with_psf_sigma
from ..predict.long_stack import StackJob, output_without_results
from ..predict.model_cache import cached_model
from ..predict.options import PredictOptions
from ..analysis.render import METHODS, render
from .camera_fields import CameraFields
from .dock import ScrollingDock, fixed_width_combo
from .frame_range import FrameRange
from .job_controls import JobControls, StatusLabel
from .layers import (PREVIEW_ROLE, TAG, fit_view, layer_choices, opened_beside, outputs, pick_shown, place_image,
                     remove_layers, remove_outputs, shown_note, stack_of, table_from_layer, view_alone)
from .models import MODELS
from .per_image import PerImageFields
from .predict_run import Cancelled, Progress, RunLayers, frame_job, movie_job
from .settings import Settings, add_sections, restore_button
from .writers import export_csv, output_layer

PREVIEW_DELAY_MS = 400  # a live preview runs this long after the last change
RESULTS_DIR = Path.home() / "var-emitter-results"  # movie results of stacks that are not files
# said while a long run of the bundled model on a CPU goes on (docs/benchmarks.md: whole pipeline
# on 2 CPU cores, 3.20 against 16.52 frames/s at 160x160, 0.55 against 7.36 at 256x256)
NAMED_HIDDEN = 3  # layers a stack shown alone names as hidden (the status stays a few lines on a laptop)
FASTER_HINT = "the fast model (Model › model) runs 5-13× faster on a CPU"


class PredictWidget(ScrollingDock, JobControls, Container):
    """Pick an image, set up the camera, pick a model; Predict fills a Points layer (and, if
    asked, one map per scale); a movie is saved chunk by chunk to a localisation file and resumes
    where a cancelled run stopped; Export CSV; Render."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        if not fits_compiled():  # the first run after installing would wait for it (Progress.describe says so)
            threading.Thread(target=compile_fits, daemon=True, name="compile-fits").start()
        self.viewer, self.layers, self.job_progress = viewer, None, None
        self.running_preview = False  # the job running is the live preview's
        self.said_no_maps: set[Path] = set()  # models told to make no per-scale maps (said once each)
        # the camera checked on each stack's frames (id of its data, camera values) -> what was said: once
        # each (a run that starts after its PSF sigma estimate said it again), and in the panel with the run's
        self.camera_said: dict[tuple[int, str], list[str]] = {}
        self.camera_lines: list[str] = []  # ... those of the run going on
        self.stack_job: StackJob | None = None  # a movie run's claim on its output, until its worker ends
        self.sigma_line = ""  # what the panel says of the running run's PSF sigma (estimated; "" when given)
        self.psf_sigmas: dict[tuple, tuple[PredictOptions, SigmaNote | None]] = {}  # _estimate_psf_sigma
        self.image = ComboBox(label="image", choices=layer_choices(viewer, Image, inputs_only=True),
                              tooltip="The camera stack (ADU) to localise; maps and renders are not offered")
        pick_shown(self.image)
        self.frame_range = FrameRange(viewer)
        self.frames, self.first, self.last = self.frame_range.mode, self.frame_range.first, self.frame_range.last
        self.camera_fields = CameraFields(viewer)
        self.model = ComboBox(label="model", choices=MODELS.choices,
                              tooltip="The bundled model; the fast model (a CPU-trained U-Net: several times "
                              "faster on a CPU, better on crowded frames; docs/model.md); or one you added")
        for combo in (self.image, self.model):  # long layer and model names do not widen the dock
            fixed_width_combo(combo)
        self.checkpoint = FileEdit(label="add model", filter="*.safetensors", mode="r",
                                   tooltip="A model file (.safetensors with its .json card), e.g. from Fine-tune")
        self.threshold = FloatSpinBox(label="threshold [probability]", value=DEFAULT_THRESHOLD, min=0.05, max=0.95,
                                      step=0.05, tooltip="Detection probability a spot needs (integrated over 3x3 "
                                      "output cells); higher keeps fewer, surer detections")
        self.refine = CheckBox(text="refine positions (maximum-likelihood fit)", value=True,
                               tooltip="Fit each detection jointly with its overlapping neighbours under the camera's "
                               "noise and the PSF (sigma estimated from the spots once per image); the "
                               "'fitted' column says which rows carry the fit. Off: the network's positions")
        self.psf_sigma = FloatSpinBox(label="PSF σ [nm] (0: from the spots)", value=0.0, min=0.0, max=2000.0,
                                      step=5.0, tooltip="The refinement's PSF sigma; 0 estimates it from the spots "
                                      "of the first frames, once per image (said at the top of the panel below)")
        self.device = ComboBox(label="device", choices=("auto", "cpu", "cuda"), value="auto",
                               tooltip="auto: the GPU when there is one")
        self.preview = CheckBox(text="live preview (current frame)", value=False,
                                tooltip="Predict the frame on screen again whenever the frame, camera or threshold "
                                        "changes, into a layer of its own (larger rings): a run's layers stay")
        self.show_maps = CheckBox(text="add per-scale maps", value=False,
                                  tooltip="Add the model's map of each scale, coarse to fine, as hidden image layers "
                                  "below the detections; select one in the layer list to see it")
        self.out_file = FileEdit(label="save movie to", mode="w", filter="*.csv *.h5", nullable=True,
                                 tooltip="Where a movie run writes its localisations (CSV or .h5), chunk by chunk; "
                                 "empty: beside the stack as <name>.locs.csv (<name>.locs-2.csv, ... where results "
                                 f"are there already: none is replaced), or in ~/{RESULTS_DIR.name} where its folder "
                                 "cannot be written. The same file again resumes a run")
        self.chunk_frames = SpinBox(label="chunk [frames]", value=64, min=1, max=100_000,
                                    tooltip="Frames saved at a time: a cancelled run resumes from the last saved chunk")
        job_controls = self._job_controls("Predict")
        self.warnings = StatusLabel()
        self.warnings.tooltip = "What the last run found outside the model's training ranges, in full"
        self.shown_warnings: dict[int, set[str]] = {}  # per image (its data): kinds of warning notified
        self.csv_path = FileEdit(label="CSV", mode="w", filter="*.csv", nullable=True,
                                 tooltip="ThunderSTORM layout, nm, 1-based frames")
        self.export_button = PushButton(text="Export CSV")
        self.render_nm = FloatSpinBox(label="render [nm/px]", value=10.0, min=1.0, max=1000.0,
                                      tooltip="Pixel size of the super-resolution image")
        self.render_method = ComboBox(label="render", choices=METHODS, value="gaussian",
                                      tooltip="gaussian: each localisation blurred by its uncertainty; "
                                      "histogram: counts")
        self.render_button = PushButton(text="Render super-resolution")
        self.settings = Settings("predict", {  # not the frames: each session starts with every frame
            "threshold": self.threshold, "refine": self.refine, "device": self.device,
            "show_maps": self.show_maps,
            "chunk_frames": self.chunk_frames, "render_nm": self.render_nm, "render_method": self.render_method})
        super().__init__(widgets=[], scrollable=True)
        add_sections(self, {
            "Input": [self.image, self.frames, self.first, self.last],
            "Camera": [self.camera_fields],
            "Model": [self.model, self.checkpoint, self.threshold, self.refine, self.psf_sigma, self.device,
                      self.preview],
            "Run": [self.show_maps, self.out_file, self.chunk_frames, self.warnings],
            "Output": [self.csv_path, self.export_button, self.render_nm, self.render_method, self.render_button]})
        self.body.layout().addWidget(restore_button(self.settings).native)
        self.fit_width()
        self.make_dock(job_controls)  # Predict, Cancel, progress and status always in view
        self.preview_timer = QTimer(self.body, singleShot=True, interval=PREVIEW_DELAY_MS)
        self.preview_timer.timeout.connect(self._preview)
        # each image its own output files and PSF sigma: one image's run never writes over another's
        # file nor fits with another's PSF
        self.image_fields = PerImageFields((self.out_file, self.csv_path, self.psf_sigma), self.image.value, viewer)
        self.image.changed.connect(self.camera_fields.fill_from)
        self.image.changed.connect(self.frame_range.follow)
        self.image.changed.connect(self.image_fields.chosen)
        self.image.changed.connect(self._forget_last_run)
        self.image.changed.connect(self._show_chosen)
        self.checkpoint.changed.connect(self._add_checkpoint)
        MODELS.offer_in(self.model)
        viewer.layers.events.inserted.connect(self._layer_added)
        viewer.layers.events.removed.connect(self._layer_removed)
        self.run_button.changed.connect(self.start)
        self.export_button.changed.connect(self.export_csv)
        self.render_button.changed.connect(self.render_image)
        self.camera_fields.shared.changed.connect(self._camera_changed)
        self.threshold.changed.connect(self._schedule_preview)
        self.preview.changed.connect(self._schedule_preview)
        self.preview.changed.connect(self._preview_switched)
        viewer.dims.events.current_step.connect(self._schedule_preview)
        self.camera_fields.fill_from(self.image.value)
        self.frame_range.follow(self.image.value)

    # ---- inputs -------------------------------------------------------------------------
    def _layer_removed(self, event) -> None:
        """The choices follow; the stack chosen closed, the status says so and names the one chosen
        now (shown alone: what was made of the closed one is hidden); with no stack left to choose,
        the last run's status and warnings go (the choice goes to none without a word)."""
        closed = event.value if event.value is self.image.value else None
        self._forget_data(id(event.value.data))
        self.image.reset_choices()
        if self.image.value is None:
            self._forget_last_run()
        elif closed is not None and self.worker is None:
            shown = self.status.value
            self.status.value = f"{closed.name} was closed; now on {self.image.value.name}" + (
                f". {shown}" if shown else "")

    def _forget_data(self, data_id: int) -> None:
        """What is kept per stack by the id of its data (its PSF sigma, the camera checked on it, the
        warnings notified) goes with the stack: Python gives a later stack the id again (a review
        found it in 10 of 20 tries), which would then get the closed one's."""
        for cache in (self.psf_sigmas, self.camera_said):
            for key in [key for key in cache if key[0] == data_id]:
                del cache[key]
        self.shown_warnings.pop(data_id, None)

    def _layer_added(self, event) -> None:
        """A stack the user opens becomes the one to predict on (Predict right after opening a
        second stack must not run the first again); outputs are never offered. A single image of
        the chosen stack's frame size (a calibration map, an average) is opened beside it."""
        self.image.reset_choices()
        if event.value not in self.image.choices:
            return
        current = self.image.value
        if opened_beside(event.value, current):
            if self.worker is None:
                self.status.value = (f"{event.value.name} opened beside {current.name} (one image of its frame "
                                     "size: a calibration map or an average?); choose it under image to predict on it")
            return
        if current is event.value:
            self._show_chosen(event.value)
        self.image.value = event.value

    def _show_chosen(self, layer) -> None:
        """The stack chosen (or opened) is shown alone with its own layers (layers.show_alone),
        the view on it; the status names what was hidden."""
        hidden = view_alone(self.viewer, layer, self.image.choices) if layer is not None else []
        if hidden and self.worker is None:
            named = ", ".join(hidden[:NAMED_HIDDEN]) + (f" and {len(hidden) - NAMED_HIDDEN} more"
                                                          if len(hidden) > NAMED_HIDDEN else "")
            self.status.value = (f"{layer.name} shown alone; hidden (tick their eye in the layer list to show "
                                 f"them): {named}")

    def _forget_last_run(self, *_) -> None:
        """JobControls': the last run's warnings too say nothing about another dataset."""
        super()._forget_last_run()
        if self.worker is None:
            self.warnings.value = ""

    def _camera_changed(self, _values: dict, _sender, _entered: bool) -> None:
        self._schedule_preview()

    def _add_checkpoint(self, path) -> None:
        """A model file added is loaded first (into the one model cache): a damaged file or card is
        said now and never offered (trying the plugin, one was listed and failed only at Predict)."""
        if not (path and Path(path).is_file()):
            return
        try:
            cached_model(path, "cpu")  # on the CPU: a device missing here is said at Predict, not of the file
        except InputError as exc:
            show_error(f"add model: {exc}")
            return
        self.model.value = MODELS.add(path)

    def _sigma_key(self, options: PredictOptions, layer, camera) -> tuple | None:
        """What the PSF sigma of a run is estimated once per: image, model and camera (None: the
        run needs no estimate, the refinement being off or the sigma given)."""
        if not options.refine or options.psf_sigma_nm is not None:
            return None
        return id(layer.data), str(options.weights), repr(camera.to_dict())

    def _estimate_psf_sigma(self, key: tuple, first: int, options: PredictOptions, model, frames, camera,
                            current_frame_only: bool, one_frame: bool, layer) -> None:
        """Estimate the run's PSF sigma off the GUI thread (the network on the first frames: many
        seconds on a CPU), said once in a notification; then start the run it was for, on `layer`,
        if that is still the stack chosen (trying the plugin, a stack closed meanwhile had the run
        start on the other one, with its camera). An estimate is kept for `key` (_sigma_key); where
        none could be made (no spot in those frames), only for runs from the same first frame
        `first` (0-based): a run from other frames tries again. The worker holds the widget weakly:
        a viewer closed meanwhile takes it away, and nothing follows."""
        widget = weakref.ref(self)

        def ended(status: str | None) -> PredictWidget | None:
            this = widget()
            if this is not None and status is not None:
                this.progress_timer.stop()
                this.worker, this.status.value, this.job_progress = None, status, None
                this.run_button.enabled, this.cancel_button.enabled = True, False
                if current_frame_only and not this.preview.value:  # the preview switched off: as if none ran
                    this.status.value, this.warnings.value = this._said_of_results()
                elif status:  # no run follows: the warnings of the results in view again
                    this.warnings.value = this._said_of_results()[1]
            return this

        def estimated(result) -> None:
            if estimating.stop.is_set():  # cancelled after the network's last batch: not kept, no run follows
                ended("cancelled while estimating the PSF sigma")
                return
            this = ended("")
            if this is not None:
                if layer in this.viewer.layers:  # not for a stack closed meanwhile: its id may go to the next
                    this.psf_sigmas[key if result[0].refine else (*key, first)] = result
                if this.image.value is not layer:  # closed, or another chosen, meanwhile: no run on another stack
                    gone = "was closed" if layer not in this.viewer.layers else "is no longer the image chosen"
                    now = f"; now on {this.image.value.name}" if this.image.value is not None else ""
                    this.status.value = f"{layer.name} {gone} while its PSF sigma was estimated: nothing was run{now}"
                    this.warnings.value = this._said_of_results()[1]  # its note unsaid: it would read as the other's
                    return
                if result[1] is not None:
                    (show_warning if result[1].caution else show_info)(result[1].text)
                if not (current_frame_only and not this.preview.value):  # no preview once switched off
                    this.start(current_frame_only)

        def failed(exc: Exception) -> None:
            if isinstance(exc, Cancelled):
                ended("cancelled while estimating the PSF sigma")
                return
            this = ended("not started: see the message under Run")
            if this is not None:
                show_error(f"the PSF sigma could not be estimated: {exc}")
                this.warnings.value = f"✖ the PSF sigma could not be estimated: {exc}"

        def finished() -> None:  # after returned or errored, which end the estimate; else cancelled:
            this = widget()  # a worker asked to quit returns nothing, even where its work was done
            if this is not None and this.job_progress is estimating:
                ended("cancelled while estimating the PSF sigma")

        n = sigma_frames(frames.shape)  # more than a one-frame run's: one frame holds too few spots
        self.job_progress = estimating = Progress(n, doing="estimating the PSF sigma (once per image and camera): ")
        self.running_preview = current_frame_only
        worker = create_worker(with_psf_sigma, options, model, frames, camera, estimating.chunk(0), in_widget=True,
                               _start_thread=False,
                               _connect={"returned": estimated, "errored": failed, "finished": finished})
        # the last run's warnings are not this one's; what is going on is said where it stays in view
        why = " (one frame holds too few spots)" if one_frame and n > 1 else ""
        self.warnings.value = (f"ℹ The PSF sigma is estimated once per image, model and camera, from {n} frame(s) "
                               f"from the first of this run on{why}: a PSF σ [nm] given skips it.")
        self._launch(worker, estimating.total, f"estimating the PSF sigma for this image and camera, from {n} "
                                               "frame(s)…")

    def _known_sigma(self, key: tuple, first: int) -> tuple[PredictOptions, SigmaNote | None] | None:
        """The PSF sigma estimated for `key` (_sigma_key), or the failure to estimate one from
        frames starting at `first`; None: not tried."""
        return self.psf_sigmas.get(key) or self.psf_sigmas.get((*key, first))

    def _with_psf_sigma(self, options: PredictOptions, key: tuple | None, first: int) -> tuple[PredictOptions, str]:
        """The options with the PSF sigma estimated for `key` (_sigma_key; once per image, model and
        camera, from the first of the frames of the run that asked: a live preview does not
        estimate it again), and the line the panel shows of it ("" when the sigma was given)."""
        if key is None:
            return options, ""
        estimated, note = self._known_sigma(key, first)
        line = f"{'⚠' if note.caution else 'ℹ'} {note.text}" if note is not None else ""
        return replace(options, refine=options.refine and estimated.refine, psf_sigma_nm=estimated.psf_sigma_nm), line

    def _movie_out(self, layer) -> Path:
        """The file a movie run writes: the one chosen, else beside the stack (in RESULTS_DIR for a
        stack that is not a file, or whose folder is not open to writing) as <name>.locs.csv, or
        <name>.locs-2.csv, ... where results are there already (output_without_results)."""
        if self.out_file.value:
            return Path(self.out_file.value)
        source = Path(layer.metadata["path"]) if layer.metadata.get("path") else None
        name = source.name.split(".")[0] if source else layer.name
        folder = source.parent if source and open_to_writing(source.parent) else RESULTS_DIR
        return output_without_results(folder / f"{name}.locs.csv")

    # ---- running --------------------------------------------------------------------------
    def _schedule_preview(self, *_) -> None:
        if self.preview.value:
            self.preview_timer.start()

    def _preview_switched(self, on: bool) -> None:
        """Live preview off: none pending or running goes on, its layers go, and the status and
        warnings are those of the results in view again (a run's layers stayed as they were)."""
        if on:
            return
        self.preview_timer.stop()
        if self.worker is not None and self.running_preview:
            self.cancel()  # its end removes what it made (_report)
        remove_layers(self.viewer, outputs(self.viewer, (PREVIEW_ROLE,)))
        if self.worker is None and self.layers is not None and self.layers.preview:
            self.layers = self.layers.previous
            self.status.value, self.warnings.value = self._said_of_results()

    def _last_run(self) -> RunLayers | None:
        """The last run (not a live preview) of the image chosen whose detections are in the
        viewer, or None."""
        run = self.layers.previous if self.layers is not None and self.layers.preview else self.layers
        if (run is None or run.image is not self.image.value or run.points is None
                or run.points not in self.viewer.layers):
            return None
        return run

    def _said_of_results(self) -> tuple[str, str]:
        """The status line and warnings of the results in view (_last_run), else none."""
        run = self._last_run()
        return run.said if run is not None else ("", "")

    def _preview(self) -> None:
        if not self.preview.value:
            return
        if self.worker is None and self.image.value is not None:
            self.start(current_frame_only=True)
        elif self.worker is not None:
            self.preview_timer.start()  # try again once this run has ended

    def start(self, current_frame_only: bool = False) -> None:
        """Check the inputs (a clear notification for each problem), then predict off the GUI thread."""
        if self.worker is not None:
            return
        try:
            layer = self.image.value
            if layer is None:
                raise InputError("open an image stack first (File > Open, or the sample data)")
            frames, single = stack_of(layer)
            camera = self.camera_fields.camera_of(layer)
            first, stop = self.frame_range.span(layer, frames.shape[0], current_frame_only)
            options = PredictOptions(model=self.model.value, device=self.device.value, threshold=self.threshold.value,
                                     refine=self.refine.value, psf_sigma_nm=self.psf_sigma.value or None)
            model, card = cached_model(options.weights, options.device)
            options.check_model(model.config)  # a 3-D model belongs in the 3-D widget
            movie = not current_frame_only and self.frames.value != "current frame"
            self.camera_lines = []
            if movie:  # the CLI's checks of the camera on the data (not on every live-preview frame), first
                checked = (id(layer.data), repr(camera.to_dict()))
                if checked not in self.camera_said:
                    self.camera_said[checked] = check_camera_on_frames(camera, frames)
                    for message in self.camera_said[checked]:
                        show_warning(message)
                self.camera_lines = self.camera_said[checked]
            key = self._sigma_key(options, layer, camera)
            if key is not None and self._known_sigma(key, first) is None:  # estimated first, then this run starts
                self._estimate_psf_sigma(key, first, options, model, frames[first:stop if movie else None], camera,
                                         current_frame_only, one_frame=not movie, layer=layer)
                return
            options, sigma_line = self._with_psf_sigma(options, key, first)
            job = None
            if movie:
                source = layer.metadata.get("path")
                described = f"{layer.name} (in memory, {frames.shape[0]}x{frames.shape[1]}x{frames.shape[2]})"
                job = StackJob.start(source or described, camera, options, self._movie_out(layer),
                                     self.chunk_frames.value, (first, stop), frames=None if source else frames,
                                     restart=True)
        except InputError as exc:  # said in the panel too, in full, in place of the last run's status
            show_error(str(exc))
            self.status.value, self.warnings.value = "not started: see the message under Run", f"✖ {exc}"
            self.progress.value = 0
            self.scroll_area.ensureWidgetVisible(self.warnings.native)
            return
        if single and not current_frame_only:
            show_info(f"{layer.name!r} is a single 2D frame: predicting it as a one-frame stack")
        if place_image(layer, camera.pixel_size_nm):
            fit_view(self.viewer, layer, or_all=True)
        already = 0 if job is None else stop - first - sum(b - a for a, b in job.todo())
        slow = Path(options.weights).resolve() == BUNDLED and next(model.parameters()).device.type == "cpu"
        self.job_progress = Progress(stop - first, already, hint=FASTER_HINT if slow else "")
        binned, with_maps = run_bin_px(model, options, camera), self.show_maps.value and not current_frame_only
        if with_maps and not model.config.var_prior:
            weights = Path(options.weights).resolve()
            if weights not in self.said_no_maps:
                show_info("this model makes no per-scale maps (the fast model finds emitters in one pass; the "
                          "bundled model generates them scale by scale): only the localisations are added")
                self.said_no_maps.add(weights)
            with_maps = False
        self.running_preview = current_frame_only
        self.layers = RunLayers(self.viewer, layer, single, first, stop - first, frames.shape[1:],
                                tuple(s * binned for s in model.config.token_strides_px),
                                camera, Envelope.from_card(card), with_maps,
                                psf_sigma_known=options.refine and options.psf_sigma_nm is not None,
                                other_models=bundled_alternatives(options.weights, in_widget=True), bin_px=binned,
                                previous=self.layers, movie=movie, preview=current_frame_only)
        self.stack_job, self.sigma_line = job, sigma_line
        generator = (movie_job, job, self.job_progress) if movie else (
            frame_job, model, frames, first, camera, options, self.job_progress)
        worker = create_worker(*generator, _start_thread=False, _connect={
            "yielded": self._arrived, "errored": self._failed, "finished": self._finished})
        what = f"{stop - first:,} frame(s) → {job.out}" if movie else f"frame {first + 1}"
        if already:
            what += f" (resuming: {already:,} frame(s) saved before)"
        self._launch(worker, stop - first, f"predicting {what}…")
        self.progress.value = already

    def _arrived(self, item) -> None:
        if self.layers.preview and not self.preview.value:  # switched off: nothing of it is shown (_report)
            return
        if isinstance(item, str):
            self.layers.message = item
            if item.startswith("error: "):
                show_error(item.removeprefix("error: "))
            return
        self.layers.add(*item)

    def _failed(self, exc: Exception) -> None:
        self.layers.message = f"failed: {exc}"

    def _finished(self) -> None:
        """The job is over: every detection goes into the Points layer (which may take a moment
        for a whole movie); then Predict is available again and the status says how it went."""
        if self.stack_job is not None:  # a cancelled run's generator may be closed only later
            self.stack_job.close()
            self.stack_job = None
        self._showing_results()
        self.layers.finish(done=self._report)

    def _report(self) -> None:
        run, progress = self.layers, self.job_progress
        self._job_ended()
        self.progress.value = progress.done
        ended = "done" if progress.done >= progress.total else "stopped" if run.message else "cancelled"
        # a failed run, or one cancelled before its first frames were done, leaves no empty layers behind,
        # and the last run's, not taken over, stay that run's
        if run.preview and not self.preview.value:  # switched off meanwhile: nothing of it stays
            run.discard()
            self.layers = run.previous
            self.status.value, self.warnings.value = self._said_of_results()
            return
        kept = None  # the last run's results, where this one left them in view (not a preview's)
        if (ended == "stopped" or progress.done == 0) and not len(run.table()):
            run.discard()
            self.layers = run.previous
            last = self._last_run()
            if last is not None and last.image is run.image and len(last.table()):
                kept = last
        rate = f", {progress.rate():.2f} frames/s" if progress.done > progress.already_done else ""
        status = f"{ended}: {progress.done:,} of {progress.total:,} frame(s){rate}, {len(run.table()):,} localisations"
        if run.message:
            status += f"; {run.message}"
        if ended == "cancelled" and progress.total > 1:
            status += ("; Predict again with the same settings resumes" if progress.done
                       else "; nothing was saved")
        other = self._other_stack(run.image)  # said now only: what is kept in run.said is said with its stack chosen
        whose = f"{other}: " if other else ""
        if kept is not None:  # the warnings under Run are those of the results in view
            self.status.value = f"{whose}{status}; the last run's {len(kept.table()):,} localisations stay"
            self.warnings.value = kept.said[1]
            return
        measured = run.envelope_warnings()
        warnings = self.camera_lines + measured  # the camera's checks on the frames (notified at the start) first
        cautions = len(warnings) + self.sigma_line.startswith("⚠")  # the PSF sigma's own caution among them
        if cautions:
            status += f"; {cautions} warning(s) under Run"
        # a notification once per image (not kept for a stack closed: its data's id may go to the next);
        # the panel holds the last run's, in full
        notified = (self.shown_warnings.setdefault(id(run.image.data), set()) if run.image in self.viewer.layers
                    else set())
        for message in measured:
            if warning_kind(message) not in notified:
                show_warning(whose + message)  # named where it is another stack's than the one in view
                notified.add(warning_kind(message))
        said = "\n".join(([self.sigma_line] if self.sigma_line else []) + [f"⚠ {message}" for message in warnings])
        self.warnings.value = f"of {other}:\n{said}" if other and said else said
        self.status.value = whose + status
        run.said = status, said
        if cautions:
            self.scroll_area.ensureWidgetVisible(self.warnings.native)

    def _show_progress(self) -> None:
        """As JobControls', with the stack named where a run's is no longer the one chosen (closed, or
        another chosen, during the run: its frames done read as the other stack's)."""
        super()._show_progress()
        run = self.layers
        if self.worker is not None and run is not None and not self.job_progress.doing:  # a run, not an estimate
            other = self._other_stack(run.image)
            if other:
                self.status.value = f"{other}: {self.status.value}"

    def _other_stack(self, stack) -> str:
        """"<stack> (closed)" or "<stack>" where a run's results are of another stack than the one
        chosen now (closed or switched during the run), else nothing."""
        if stack is self.image.value:
            return ""
        return f"{stack.name}{' (closed)' if stack not in self.viewer.layers else ''}"

    # ---- outputs --------------------------------------------------------------------------
    def _detections(self):
        return output_layer(self.viewer, self.image.value, "detections")

    def export_csv(self) -> None:
        export_csv(self._detections(), self.csv_path.value, "Predict", self.status)

    def render_image(self) -> None:
        points, layer = self._detections(), self.image.value
        if points is None or not len(points.data):
            show_error("nothing to render: predict first")
            return
        px, (height, width) = self.camera_fields.camera().pixel_size_nm, layer.data.shape[-2:]
        table = table_from_layer(points)
        image = render(table, (height * px, width * px), self.render_nm.value, self.render_method.value)
        ratio = self.render_nm.value / px  # render pixels per camera pixel
        scale, translate = np.array(layer.scale[-2:], float), np.array(layer.translate[-2:], float)
        remove_outputs(self.viewer, layer.name, ("render",))
        self.viewer.add_image(
            image, name=f"{layer.name} super-resolution ({self.render_nm.value:g} nm/px)", colormap="hot",
            scale=tuple(scale * ratio), translate=tuple(translate + scale * (ratio / 2 - 0.5)),
            contrast_limits=(0.0, float(max(np.percentile(image, 99.9), 1e-6))),
            metadata={TAG: {"role": "render", "source": layer.name}})
        self.status.value = (f"rendered {len(table):,} localisations at {self.render_nm.value:g} nm/px "
                             f"({image.shape[1]} x {image.shape[0]} px){shown_note(points)}")


def warning_kind(message: str) -> str:
    """A warning without its figures: each kind is notified once per image, though its numbers
    (a median, a quantile) move a little from run to run."""
    return re.sub(r"\d[\d,.]*", "#", message)
