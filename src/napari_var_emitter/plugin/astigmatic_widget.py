"""The "3-D (astigmatic)" widget: calibrate the PSF on a bead z-stack (curves and residuals
plotted in napari's theme, saved as a calibration file), localise a movie in x, y and z with a
calibration (the 3-D model, as `var-emitter predict --psf`, or the classical 3-D fit, as
`var-emitter localize --psf`), and show localisations with z in a 3-D viewer."""

from __future__ import annotations

import functools
from pathlib import Path

import napari
import numpy as np
import pandas as pd
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, PushButton
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.layers import Image, Points
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning

from ..analysis.table_checks import has_z
from ..classical.localize import localize_stack
from ..errors import InputError
from ..io.psf_file import pixel_size_warning, read_psf_file, write_psf_file
from ..model.config import DEFAULT_THRESHOLD
from ..predict.envelope import Envelope
from ..predict.frames import predict_frames
from ..predict.model_cache import cached_model
from ..predict.options import PredictOptions
from ..psf import PSF
from ..psf_calibration.defocus import PSFCalibration, calibrate_psf
from ..psf_calibration.plot import draw_psf_calibration
from .camera_fields import CameraFields
from .colour_bar import ColourBar
from .dock import ScrollingDock, fixed_width_combo
from .frame_range import FrameRange
from .job_controls import JobControls, StatusLabel
from .layers import (BUILD_OFF_THREAD_FROM, TAG, fit_view, frame_into_view, image_points, insert_built,
                     layer_choices, output_options, place_image, refill, refillable, retire, stack_of,
                     table_from_layer, view_alone, z_colour_limits)
from .per_image import PerImageFields
from .predict_run import Progress
from .settings import Settings, add_sections, restore_button
from .theme import theme_colours
from .writers import export_csv, output_layer

METHODS = ("3-D model", "classical fit")
CHUNK_FRAMES = 16  # frames localised between progress updates and Cancel checks
VIEW_POINT_NM = 40.0  # diameter of a localisation in the 3-D view


class AstigmaticWidget(ScrollingDock, JobControls, Container):
    """1. Calibrate: bead z-stack, z-step, camera -> PSF calibration, plotted and saved.
    2. Localise in 3-D: a movie with the calibration just fitted, a calibration file, or the one
    the stack carries (the sample), by the 3-D model or the classical fit -> Points coloured by z.
    3. View in 3-D: a second viewer with the localisations at (z, y, x) in nm."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self.viewer, self.job_progress, self.calibration_worker, self.job_error = viewer, None, None, ""
        self.envelope = None  # the model's training ranges, for the warnings at the end of a run
        self.fitted: PSFCalibration | None = None
        self.fitted_beads = ""  # the name of the bead stack it was fitted on
        self.psf: PSF | None = None
        self.psf_problem = ""  # why the calibration chosen cannot be used ("" when it can, or there is none)
        self.psf_pixel_nm: float | None = None  # the pixel size the calibration was measured on, where known
        self.tables: list[pd.DataFrame] = []
        self.views: list[napari.Viewer] = []  # the 3-D viewers opened from here
        self._output = None  # (image layer, whether it is one 2D frame, pixel size in nm) of the running fit
        self._camera, self._span = None, None  # the running fit's camera and (first, stop) 0-based frames
        # none until a stack that states a z-step is opened, or the user chooses one: never the movie unasked
        self.beads = ComboBox(label="bead z-stack", choices=layer_choices(viewer, Image, inputs_only=True),
                              nullable=True, value=None,
                              tooltip="A z-stack of sub-diffraction beads (ADU): several isolated beads, the focus "
                              "stepped through both foci with a few hundred nm to spare")
        self.z_step = FloatSpinBox(label="z-step [nm]", value=20.0, min=0.1, max=1000.0, step=1.0,
                                   tooltip="Focus step between slices (stage or objective piezo), typically 10-50 nm")
        self.centred = CheckBox(text="stack centred on focus", value=True,
                                tooltip="Slice k images z = (k - (n - 1)/2) x z-step; untick to give slice 0's z")
        self.z_start = FloatSpinBox(label="slice 0 at z [nm]", value=-600.0, min=-1e5, max=1e5, step=10.0,
                                    visible=False, tooltip="z of the first slice; slice k is at this + k x z-step")
        self.calibrate_button = PushButton(text="Calibrate")
        self.calibration_status = StatusLabel()
        self.figure = Figure(figsize=(4, 3.6), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(300)
        self.canvas.setVisible(False)
        self.save_path = FileEdit(label="save calibration as", mode="w", filter="*.json",
                                  tooltip="PSF calibration file (JSON, nm) for `var-emitter localize / simulate "
                                  "--psf` and for this widget")
        self.save_button = PushButton(text="Save calibration")
        self.camera_fields = CameraFields(viewer)
        self.image = ComboBox(label="movie", choices=layer_choices(viewer, Image, inputs_only=True),
                              tooltip="The astigmatic camera stack (ADU) to localise")
        self.psf_file = FileEdit(label="calibration file", mode="r", filter="*.json", nullable=True,
                                 tooltip="A PSF calibration from `var-emitter calibrate-psf` or this widget; "
                                 "empty: the one calibrated above, or the one the stack carries")
        self.psf_note = StatusLabel()  # wraps instead of widening the dock
        self.frame_range = FrameRange(viewer)
        self.frames, self.first, self.last = self.frame_range.mode, self.frame_range.first, self.frame_range.last
        self.method = ComboBox(label="method", choices=METHODS, value=METHODS[0],
                               tooltip="3-D model: the network given your calibration (as `var-emitter predict "
                               "--psf`); classical fit: one astigmatic Gaussian per spot (as `localize --psf`)")
        self.model_file = FileEdit(label="3-D model file", mode="r", filter="*.safetensors", nullable=True,
                                   tooltip="Empty: the bundled 3-D model; or one trained for your calibration "
                                   "(`var-emitter train --psf`)")
        self.threshold = FloatSpinBox(label="threshold [probability]", value=DEFAULT_THRESHOLD, min=0.05, max=0.95,
                                      step=0.05, tooltip="Detection probability a spot needs (integrated over 3x3 "
                                      "output cells); higher keeps fewer, surer detections")
        self.refine = CheckBox(text="refine positions (maximum-likelihood fit)", value=True,
                               tooltip="Fit each detection jointly with its overlapping neighbours under the camera's "
                               "noise and your calibration, z too; the 'fitted' column says which rows carry the "
                               "fit. Off: the network's positions, many times faster in 3-D")
        self.snr = FloatSpinBox(label="detection SNR", value=4.0, min=1.0, max=100.0, step=0.5,
                                tooltip="Difference-of-Gaussians peak a spot needs, in units of its shot noise; "
                                "higher keeps fewer, brighter spots")
        job_controls = self._job_controls("Localise in 3-D")
        self.csv_path = FileEdit(label="CSV", mode="w", filter="*.csv", nullable=True,
                                 tooltip="ThunderSTORM layout with z [nm] and uncertainty_z [nm], 1-based frames")
        self.export_button = PushButton(text="Export CSV")
        self.points = ComboBox(label="localisations", choices=self._layers_with_z,
                               tooltip="A Points layer with z: from here, or a CSV from `var-emitter predict --psf` "
                               "or `localize --psf`")
        for combo in (self.beads, self.image, self.points):  # long layer names do not widen the dock
            fixed_width_combo(combo)
        self.z_colours = ColourBar("z_nm", "z", "nm")  # the points' colours: napari draws no colour bar for Points
        self.view_button = PushButton(text="View in 3-D",
                                      tooltip="Open a 3-D viewer of every localisation at (z, y, x) in nm, coloured "
                                      "by z (drag to rotate)")
        self.settings = Settings("astigmatic", {"z_step": self.z_step, "centred": self.centred,
                                                "z_start": self.z_start, "frames": self.frames, "snr": self.snr,
                                                "method": self.method, "threshold": self.threshold,
                                                "refine": self.refine})
        super().__init__(widgets=[], scrollable=True)
        add_sections(self, {
            "1. Calibrate on beads": [self.beads, self.z_step, self.centred, self.z_start, self.calibrate_button,
                                      self.calibration_status, self.canvas, self.save_path, self.save_button],
            "Camera": [self.camera_fields],
            "2. Localise in 3-D": [self.image, self.psf_file, self.psf_note, self.frames, self.first, self.last,
                                   self.method, self.model_file, self.threshold, self.refine, self.snr,
                                   self.csv_path, self.export_button],
            "3. View": [self.points, self.z_colours, self.view_button]})
        self.body.layout().addWidget(restore_button(self.settings).native)
        self.fit_width()
        self.make_dock(job_controls)  # Localise, Cancel, progress and status always in view, as in Predict
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            for combo in (self.beads, self.image, self.points):
                event.connect(combo.reset_choices)
        self.centred.changed.connect(lambda centred: setattr(self.z_start, "visible", not centred))
        self.method.changed.connect(self._method_chosen)
        self._choose_at_opening()
        self.beads.changed.connect(self._beads_chosen)
        # each movie its own CSV (one movie's export never overwrites another's) and calibration file (one
        # movie's was used on the next, another microscope's, without a word)
        self.image_fields = PerImageFields((self.csv_path, self.psf_file), self.image.value, viewer)
        self.image.changed.connect(self._movie_chosen)
        self.image.changed.connect(self._show_chosen)
        self.psf_file.changed.connect(self._choose_psf)
        self.psf_file.changed.connect(self._forget_last_run)  # the last run's status was of another calibration
        self.calibrate_button.changed.connect(self.calibrate)
        self.save_button.changed.connect(self.save_calibration)
        self.run_button.changed.connect(self.start)
        self.export_button.changed.connect(self.export_csv)
        self.view_button.changed.connect(self.view_3d)
        self.points.changed.connect(self.z_colours.show_layer)
        # the last layer removed leaves the choice empty without a change event
        viewer.layers.events.removed.connect(lambda _: self.z_colours.show_layer(self.points.value))
        viewer.layers.events.inserted.connect(self._opened)
        viewer.events.theme.connect(lambda _: self._draw_calibration())
        self.z_start.visible = not self.centred.value
        self._method_chosen(self.method.value)
        self._movie_chosen(self.image.value)
        self.z_colours.show_layer(self.points.value)
        self._beads_chosen(self.beads.value)

    def _choose_at_opening(self) -> None:
        """The widget opened: the bead stack opened last, and as the movie the stack in view (the
        topmost shown that states no z-step; none shown, the last opened); nothing in view changes.
        It was the stack opened last, shown alone: opening the widget put another dataset in view."""
        beads = [layer for layer in self.beads.choices if layer is not None and _is_bead_stack(layer)]
        if beads:
            self.beads.value = beads[-1]
        movies = [layer for layer in self.image.choices if not _is_bead_stack(layer)]
        shown = [layer for layer in movies if layer.visible]
        if shown or movies:
            self.image.value = (shown or movies)[-1]

    def _offer(self, layer) -> None:
        """Choose an image that states a z-step as the bead stack, any other stack as the movie
        (Localise right after opening a second movie must not run the first again)."""
        if _is_bead_stack(layer) and layer in self.beads.choices:
            self.beads.value = layer
        elif layer in self.image.choices:
            self.image.value = layer

    def _show_chosen(self, layer) -> None:
        """A movie chosen is shown alone with its own layers (layers.show_alone), the view on it."""
        if layer is not None:
            view_alone(self.viewer, layer, self.image.choices)

    def _opened(self, event) -> None:
        """A stack the user opens is chosen (_offer) and shown alone, the view on it (show_alone:
        napari puts every dataset in one world)."""
        self._offer(event.value)
        if event.value in (self.beads.value, self.image.value):
            view_alone(self.viewer, event.value, self.image.choices)

    # ---- 1. calibrate -------------------------------------------------------------------------
    def _beads_chosen(self, layer) -> None:
        """Camera from the bead stack's file; the z-step too when it states one (none chosen: the
        fields stay the movie's)."""
        if layer is None:
            return
        self.camera_fields.fill_from(layer)
        if layer is not None and layer.metadata.get("z_step_nm"):
            self.z_step.value = float(layer.metadata["z_step_nm"])

    def calibrate(self) -> None:
        """Fit the calibration off the GUI thread; problems go to the status line."""
        if self.calibration_worker is not None:
            return
        try:
            layer = self.beads.value
            if layer is None:
                raise InputError("open a bead z-stack first (File > Open, or File > Open Sample > VAR Emitter)")
            frames, _ = stack_of(layer)
            camera = self.camera_fields.camera_of(layer)
        except InputError as exc:
            self._calibration_failed(exc)
            return
        z_start = None if self.centred.value else self.z_start.value
        self.calibrate_button.enabled = False
        self.calibration_status.value = f"fitting {frames.shape[0]} slices of {layer.name!r}…"
        self.calibration_worker = create_worker(_calibrate_or_explain, np.asarray(frames), camera,
                                                self.z_step.value, z_start, _start_thread=False)
        self.calibration_worker.returned.connect(lambda calibration: self._calibrated(calibration, layer.name))
        self.calibration_worker.errored.connect(self._calibration_failed)
        self.calibration_worker.finished.connect(self._calibration_ended)
        self.calibration_worker.start()

    def _calibrated(self, calibration: PSFCalibration | str, beads: str) -> None:
        if isinstance(calibration, str):
            self._calibration_failed(calibration)
            return
        self.fitted, self.fitted_beads = calibration, beads
        psf, summary = calibration.psf, calibration.summary()
        lines = [f"{summary['beads']} beads, {summary['slices']} slices; the stack's z = 0 is at "
                 f"{round(calibration.focal_offset_nm):+d} nm from the calibrated focus"]
        for name, curve in (("x", psf.curve_x), ("y", psf.curve_y)):
            lines.append(f"σ{name}: σ0 {curve.sigma0_nm:.1f} nm, focus {curve.focus_nm:+.1f} nm, depth "
                         f"{curve.depth_nm:.0f} nm, A {curve.cubic:+.3f}, B {curve.quartic:+.3f}; RMS residual "
                         f"{summary['residual_rms_nm'][name]:.1f} nm")
        left_out = ", ".join(f"{n} {why}" for why, n in summary["beads_left_out"].items() if n)
        if left_out:
            lines.append(f"beads left out: {left_out}")
        self.calibration_status.value = "\n".join(lines)
        self.canvas.setVisible(True)
        self._draw_calibration()
        if self.psf_file.value:  # the calibration just fitted is the one to use, not a file chosen before
            self.psf_file.value = None  # (_choose_psf follows)
        else:
            self._choose_psf()

    def _calibration_failed(self, exc: Exception | str) -> None:
        self.calibration_status.value = f"error: {exc}"
        show_error(str(exc))

    def _calibration_ended(self) -> None:
        self.calibration_worker = None
        self.calibrate_button.enabled = True

    def _draw_calibration(self) -> None:
        if self.fitted is not None:
            draw_psf_calibration(self.figure, self.fitted, theme_colours(self.viewer))
            self.canvas.draw_idle()

    def save_calibration(self) -> None:
        path = Path(self.save_path.value) if self.save_path.value else None
        try:
            if self.fitted is None:
                raise InputError("nothing to save yet: press Calibrate first")
            if path is None or path.suffix.lower() != ".json" or path.is_dir():
                raise InputError("choose a .json file to save the calibration to")
            summary = {"source": self.fitted_beads, **self.fitted.summary()}  # the beads fitted, not those chosen since
            write_psf_file(path, self.fitted.psf, self.fitted.pixel_size_nm, summary)
        except (InputError, OSError) as exc:
            show_error(str(exc))
            return
        show_info(f"PSF calibration saved: {path}")

    # ---- 2. localise --------------------------------------------------------------------------
    def _movie_chosen(self, layer) -> None:
        self.camera_fields.fill_from(layer)
        self.frame_range.follow(layer)
        self.image_fields.chosen(layer)
        self._forget_last_run()
        self._choose_psf()

    def _choose_psf(self, *_) -> None:
        """The calibration Localise uses: the file given (a calibration fitted above clears it), else
        the one fitted above, else the one the movie carries in its metadata (the sample); said in
        plain words under the field."""
        self.psf, self.psf_pixel_nm, source, self.psf_problem = None, None, "", ""
        layer = self.image.value
        try:
            if self.psf_file.value and Path(self.psf_file.value).is_file():
                self.psf, self.psf_pixel_nm = read_psf_file(self.psf_file.value)
                source = Path(self.psf_file.value).name
            elif self.fitted is not None:
                self.psf, source = self.fitted.psf, f"the calibration fitted above (on {self.fitted_beads!r})"
                self.psf_pixel_nm = self.fitted.pixel_size_nm
            elif layer is not None and "psf" in layer.metadata:
                self.psf, source = PSF.from_dict(layer.metadata["psf"]), f"the calibration {layer.name!r} carries"
        except (InputError, ValueError, TypeError) as exc:  # a damaged file, or metadata that is no calibration
            self.psf_problem = str(exc)
            self.psf_note.value = f"error: {exc}"
            return
        if self.psf is None:
            self.psf_note.value = "No calibration yet: calibrate on beads above, or choose a calibration file."
            return
        low, high = self.psf.z_range_nm
        self.psf_note.value = (f"Using {source}: foci at {self.psf.curve_x.focus_nm:+.0f} (x) and "
                               f"{self.psf.curve_y.focus_nm:+.0f} nm (y), z from {low:.0f} to {high:.0f} nm.")

    def _method_chosen(self, method: str) -> None:
        """Show the settings of the chosen method only."""
        model = method == METHODS[0]
        self.model_file.visible, self.threshold.visible, self.refine.visible = model, model, model
        self.snr.visible = not model

    def _localiser(self, camera):
        """(frames, start, stop) -> table of frames[start:stop], for the chosen method; the model is loaded here, so a
        bad model file is reported before the run, and a camera or calibration outside its training
        ranges warned of (the photons and background it measures, when the run ends)."""
        self.envelope = None
        message = pixel_size_warning(self.psf_pixel_nm, camera.pixel_size_nm)
        if message:
            show_warning(message)
        if self.method.value == METHODS[1]:
            psf, snr = self.psf, self.snr.value
            return lambda frames, start, stop: localize_stack(np.asarray(frames[start:stop]), camera, snr=snr, psf=psf,
                                                              first_frame=start)
        options = PredictOptions(model=self.model_file.value or None, device="auto", threshold=self.threshold.value,
                                 psf=self.psf, refine=self.refine.value)
        model, card = cached_model(options.weights, options.device)
        options.check_model(model.config)
        self.envelope = envelope = Envelope.from_card(card)
        for message in envelope.input_warnings(camera, self.psf) if envelope else []:
            show_warning(message)
        return lambda frames, start, stop: predict_frames(model, frames, camera, options, span=(start, stop)).table

    def start(self) -> None:
        """Check the inputs, then localise the frames off the GUI thread, chunk by chunk."""
        if self.worker is not None:
            return
        try:
            layer = self.image.value
            if layer is None:
                raise InputError("open an astigmatic stack first (File > Open, or the 3-D sample)")
            if self.psf_problem:
                raise InputError(f"the PSF calibration cannot be used: {self.psf_problem}")
            if self.psf is None:
                raise InputError("no PSF calibration: calibrate on a bead z-stack above, or choose a calibration file")
            frames, single = stack_of(layer)
            first, stop = self.frame_range.span(layer, frames.shape[0])
            camera = self.camera_fields.camera_of(layer)
            localise = self._localiser(camera)
        except InputError as exc:
            show_error(str(exc))
            if self.worker is None:
                self.status.value = f"not started: {exc}"
            return
        if not layer.visible:  # a movie another widget hid: its localisations are shown over it, not another stack
            view_alone(self.viewer, layer, self.image.choices)
        if place_image(layer, camera.pixel_size_nm):
            fit_view(self.viewer, layer, or_all=True)
        self.tables, self.job_progress, self.job_error = [], Progress(stop - first), ""
        self.layer_builder = None  # the worker that builds the results' layer at the end
        worker = create_worker(localise_3d_job, localise, frames, first, stop, self.job_progress,
                               _start_thread=False, _connect={"yielded": self._arrived, "errored": self._failed,
                                                              "finished": self._finished})
        self._output, self._camera, self._span = (layer, single, camera.pixel_size_nm), camera, (first, stop)
        self._launch(worker, stop - first,
                     f"localising frame(s) {first + 1} to {stop} (1-based) in 3-D ({self.method.value})…")

    def _arrived(self, item: pd.DataFrame | str) -> None:
        if isinstance(item, str):
            self._failed(item)
        else:
            self.tables.append(item)

    def _failed(self, exc: Exception | str) -> None:
        self.job_error = str(exc)
        show_error(self.job_error)

    def _finished(self) -> None:
        """The job is over: its localisations go into the last run's layer of this image
        (layers.refill), or, from BUILD_OFF_THREAD_FROM on or after a run that long, into a new
        layer built off the GUI thread (the last run's kept, hidden: layers.retire); Localise is
        available again once they are shown."""
        progress = self.job_progress
        self.progress.value = progress.done
        layer, single, px = self._output
        tables = [t for t in self.tables if len(t)]
        table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
        ended = "done" if progress.done >= progress.total else "cancelled"
        status = f"{ended}: {len(table):,} localisations in {progress.done:,} frame(s)"
        if self.job_error or not len(table):
            self._job_ended()
            self.status.value = f"error: {self.job_error}" if self.job_error else status
            return
        for message in self.envelope.measured_warnings(table, self._camera) if self.envelope else []:
            show_warning(message)
        if has_z(table):
            low, high = z_colour_limits(table)
            status += f"; coloured by z from blue ({low:+.0f} nm) to red ({high:+.0f} nm)"
        options = output_options(layer, single, "3-D localisations", "localisations_3d")
        last = output_layer(self.viewer, layer, "localisations_3d")

        def shown(points) -> None:
            self._job_ended()
            self.points.value, self.status.value = points, status
            frame_into_view(self.viewer, layer, self._span)  # the slider on the run's frames
            self.z_colours.show_layer(points)  # a refilled layer is the same choice, with new limits

        if len(table) < BUILD_OFF_THREAD_FROM and last is not None and refillable(last, 2 if single else 3):
            last.scale, last.translate, last.visible = options["scale"], options["translate"], True
            refill(last, table, px)
            shown(last)
            return
        self._showing_results()

        def make_room() -> int:
            if last is not None:
                retire(last)  # emptying a long run's layer would freeze the viewer longer than this
            return len(self.viewer.layers)

        def not_shown(exc: Exception) -> None:
            self._job_ended()
            self.status.value = f"{status}; they could not be shown ({exc})"
        build = functools.partial(image_points, table, px, single, **options)
        self.layer_builder = insert_built(self.viewer, build, make_room, shown, not_shown)

    def export_csv(self) -> None:
        export_csv(output_layer(self.viewer, self.image.value, "localisations_3d"), self.csv_path.value,
                   "Localise in 3-D", self.status)

    # ---- 3. view ------------------------------------------------------------------------------
    def _layers_with_z(self, _widget=None) -> list:
        """Points layers with z: this widget's results (even where every z is the same, e.g. one
        localisation), and others whose z varies (2-D truth has z = 0)."""
        return [layer for layer in self.viewer.layers if isinstance(layer, Points)
                and (layer.metadata.get(TAG, {}).get("role") == "localisations_3d" or has_z(layer.features))]

    def view_3d(self) -> napari.Viewer | None:
        """A new viewer in 3-D display: every localisation of the chosen layer at (z, y, x) in nm,
        coloured by z; returns it."""
        layer = self.points.value
        if layer is None or not len(layer.data):
            show_error("pick a Points layer with z (localise in 3-D first, or open a CSV with z [nm])")
            return None
        table = table_from_layer(layer)
        if not has_z(table):
            show_error(f"{layer.name!r} has no z: pick localisations from a 3-D fit")
            return None
        view = napari.Viewer(title=f"{layer.name}: localisations in 3-D", ndisplay=3)
        view.add_points(table[["z_nm", "y_nm", "x_nm"]].to_numpy(float), name=f"{layer.name} (z, y, x)",
                        features=table, size=VIEW_POINT_NM, symbol="disc", border_width=0.0, face_color="z_nm",
                        face_colormap="turbo", face_contrast_limits=z_colour_limits(table),
                        units=("nm", "nm", "nm"), metadata={TAG: {"role": "view_3d", "source": layer.name}})
        view.dims.axis_labels = ("z", "y", "x")
        view.canvas.overlays["scale_bar"].visible = True
        view.canvas.overlays["axes"].visible = True
        view.reset_view()
        view.scene.camera.angles = (0.0, -30.0, 80.0)
        self.views.append(view)
        return view


def _is_bead_stack(layer) -> bool:
    """An image that states its z-step (a bead z-stack), never a movie to localise."""
    return "z_step_nm" in layer.metadata


def _calibrate_or_explain(frames_adu, camera, z_step_nm: float, z_start_nm: float | None) -> PSFCalibration | str:
    """calibrate_psf, or why it cannot be done (an InputError's message, shown, not raised)."""
    try:
        return calibrate_psf(frames_adu, camera, z_step_nm, z_start_nm)
    except InputError as exc:
        return str(exc)


def localise_3d_job(localise, frames, first: int, stop: int, progress: Progress):
    """Localise frames [first, stop) with `localise(frames, start, stop) -> table` of frames[start:stop], CHUNK_FRAMES
    at a time, yielding each chunk's table, or why it cannot go on (str) as its last item;
    returns early when Cancel was pressed."""
    try:
        for start in range(first, stop, CHUNK_FRAMES):
            if progress.stop.is_set():
                return
            end = min(start + CHUNK_FRAMES, stop)
            yield localise(frames, start, end)
            progress.done = end - first
    except InputError as exc:
        yield str(exc)
