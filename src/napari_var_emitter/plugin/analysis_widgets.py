"""The widgets after localisation: Drift correction, Merge blinks, Precision & resolution,
Render and Statistics. Each picks a Points layer (the one in view, following the dataset shown),
runs the plain API in analysis/ off the GUI thread on the localisations the layer shows (those the
Filter keeps), and shows its result as a new layer and/or a plot in napari's theme."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import napari
import numpy as np
import pandas as pd
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, PushButton, SpinBox
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.layers import Image, Points
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error

from ..analysis.drift import (AUTO_LOCS_PER_SEGMENT, AUTO_SEGMENTS, MAX_DISAGREEMENT_NM, MIN_SEGMENTS, apply_drift,
                              drift_csv_path, fiducial_drift, rcc_drift, write_drift_csv)
from ..analysis.merge import merge_blinks
from ..analysis.plots import Colours, draw_drift, draw_resolution, draw_stats
from ..analysis.render import add_scale_bar, field_of, frame_range, render, render_coloured
from ..analysis.resolution import frc, frc_text, nena, nena_text
from ..analysis.stats import table_stats
from ..errors import InputError
from ..io.localizations import write_localizations
from ..io.tiff import write_image_tiff
from .dock import ScrollingDock, fixed_width_combo
from .job_controls import StatusLabel
from .layers import (MARKER_PX, TAG, FollowShown, clear_file, layer_choices, pick_shown, points_kwargs, shown_note,
                     stack_name, table_from_layer)
from .theme import theme_colours
from .writers import WROTE, export_file

MAX_FIDUCIALS = 100
MARKER_NM = 100.0 * MARKER_PX  # marker size (nm) of the layers made here where the layer analysed gives none


@dataclasses.dataclass(frozen=True)
class Refused:
    """Why a step could not run on the table it was given."""

    message: str


class AnalysisWidget(ScrollingDock, Container):
    """A Points layer to analyse, the step's own fields and (optionally) a plot, with a run button
    and a status line pinned under them; `compute(table)` runs in a worker thread on the points the
    layer shows, `show(result)` back on the GUI says what came of it. Another dataset's layer chosen (or
    followed) clears the last result, its plot and the files to export to."""

    run_text = "Run"
    plot_height = 0

    def __init__(self, viewer: napari.viewer.Viewer, fields: list) -> None:
        self.viewer = viewer
        self.worker = None
        self.result = None
        self.layer = ComboBox(label="localisations", choices=layer_choices(viewer, Points), nullable=True,
                              tooltip="A Points layer from Predict or a localisation file: the localisations it "
                              "shows (those the Filter keeps)")
        fixed_width_combo(self.layer)
        pick_shown(self.layer)
        self.stack = self.layer.value and stack_name(self.layer.value)  # the dataset of the layer chosen
        self.run_button = PushButton(text=self.run_text)
        self.status = StatusLabel()
        super().__init__(widgets=[self.layer, *fields], scrollable=True)
        self.figure = self.canvas = None
        if self.plot_height:
            self.figure = Figure(figsize=(4, self.plot_height / 100), tight_layout=True)
            self.canvas = FigureCanvasQTAgg(self.figure)
            self.canvas.setMinimumHeight(self.plot_height)
            self.body.layout().addWidget(self.canvas, 1)  # the dock's spare height goes to the plot
            viewer.events.theme.connect(lambda _: self._redraw())
            self._redraw()
        else:
            self.body.layout().addStretch(1)  # ... or below the last row, not between the rows
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(self.layer.reset_choices)
        self.run_button.changed.connect(self.start)
        self.layer.changed.connect(self._layer_chosen)
        self.follow_shown = FollowShown(viewer, self.layer, lambda: self.native.parent() is not None)
        self.make_dock(pinned=(self.run_button, self.status))  # in view under the plot, as Predict's are
        self.fit_width_soon()  # every row in view once laid out (Drift's method and file fields were cut at its edge)

    def _layer_chosen(self, layer) -> None:
        """Another dataset's localisations: nothing of the last one's stays to be exported or read."""
        if layer is not None and stack_name(layer) == self.stack:
            return
        self.stack = layer and stack_name(layer)
        self.result = None
        self.status.value = ""
        self._redraw()
        for widget in self:
            if isinstance(widget, FileEdit):
                clear_file(widget)

    def table(self) -> pd.DataFrame:
        layer = self.layer.value
        if layer is None:
            raise InputError("pick a Points layer of localisations")
        return table_from_layer(layer)

    def start(self) -> None:
        if self.worker is not None:
            return
        try:
            table = self.table()
        except (InputError, ValueError) as exc:
            show_error(str(exc))
            return
        source, note, stack = self.layer.value.name, shown_note(self.layer.value), self.stack
        self.status.value = "working…"
        self.run_button.enabled = False
        self.worker = create_worker(self._compute_or_explain, table, _start_thread=False)
        self.worker.returned.connect(lambda result: self._returned(result, source, note, stack))
        self.worker.errored.connect(self._errored)
        self.worker.finished.connect(self._finished)
        self.worker.start()

    def _compute_or_explain(self, table: pd.DataFrame):
        """compute(table), or why it cannot be done (an InputError's message, shown, not raised)."""
        try:
            return self.compute(table)
        except InputError as exc:
            return Refused(str(exc))

    def _returned(self, result, source: str, note: str, stack: str) -> None:
        if stack != self.stack:  # another dataset chosen meanwhile: nothing of this one is shown or kept
            return
        if isinstance(result, Refused):
            self._errored(result.message + note)
            return
        self.result = result
        self.status.value = self.show(result, source) + note
        self._redraw()

    def _errored(self, exc: Exception | str) -> None:
        self.status.value = f"error: {exc}"
        show_error(str(exc))

    def _finished(self) -> None:
        self.worker = None
        self.run_button.enabled = True

    def _redraw(self) -> None:
        """The plot in napari's theme: the result's, or an empty area of the theme's colour."""
        if self.figure is None:
            return
        colours = theme_colours(self.viewer)
        if self.result is None:
            self.figure.clear()
            self.figure.set_facecolor(colours.background)
        else:
            self.draw(self.figure, self.result, colours)
        self.canvas.draw_idle()

    def compute(self, table: pd.DataFrame):
        raise NotImplementedError

    def show(self, result, source: str) -> str:
        """Show the result of the layer named `source` (as new layers); returns the status line of it."""
        raise NotImplementedError

    def draw(self, figure: Figure, result, colours: Colours) -> None:
        """Plot the result (widgets with a plot)."""

    def export_to(self, file_edit: FileEdit, suffixes: tuple[str, ...], write) -> None:
        """Write the last result to the file chosen in `file_edit` (one of `suffixes`) with
        write(path) -> message; problems are shown, not raised."""
        export_file(file_edit.value, suffixes, write, self.status,
                    f"nothing to export yet: press {self.run_text!r} first" if self.result is None else None)

    def add_points(self, table: pd.DataFrame, name: str, role: str, source: str) -> str:
        """Our table as a Points layer in nm world coordinates, replacing one of the same name; of
        the dataset of the layer analysed, named `source` (shown and hidden with it), its markers as
        large on screen as that layer's (Predict's are MARKER_PX camera pixels: 400 nm at 160 nm
        pixels, where these were 250 nm). The layer analysed is hidden under it (trying the plugin,
        both in view drew every ring twice); returns the status's note saying so."""
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        analysed = self.viewer.layers[source] if source in self.viewer.layers else None
        size_nm = (float(np.median(analysed.size)) * abs(analysed.scale[-1]) if isinstance(analysed, Points)
                   and len(analysed.data) else MARKER_NM)
        kwargs = points_kwargs(table, name, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), size_nm, role, self.stack)
        self.viewer.add_points(table[["frame", "y_nm", "x_nm"]].to_numpy(float), **kwargs)
        if not isinstance(analysed, Points):
            return ""
        analysed.visible = False
        return f"; {source} hidden (tick its eye to compare)"


class DriftWidget(AnalysisWidget):
    """Drift by RCC of frame segments, or from fiducials marked as points in another layer."""

    run_text = "Estimate and correct drift"
    plot_height = 220

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self.method = ComboBox(label="from", choices=["RCC (cross-correlation)", "fiducials"],
                               value="RCC (cross-correlation)",
                               tooltip="RCC: images of frame segments cross-correlated. Fiducials: bright beads "
                               "you mark in the layer below")
        self.segment_frames = SpinBox(label="segment [frames] (0: auto)", value=0, min=0, max=1_000_000,
                                      tooltip=f"Frames per RCC segment; 0: automatic (the movie in {AUTO_SEGMENTS} "
                                      f"segments, fewer, down to {MIN_SEGMENTS}, where one would hold fewer than "
                                      f"{AUTO_LOCS_PER_SEGMENT:,} localisations, and longer ones while the segments "
                                      f"disagree by over {MAX_DISAGREEMENT_NM:g} nm)")
        self.fiducials = ComboBox(label="fiducial marks", choices=layer_choices(viewer, Points),
                                  tooltip="A Points layer whose points you placed on the fiducials (nm world)",
                                  visible=False, nullable=True, value=None)
        fixed_width_combo(self.fiducials)
        self.radius_nm = FloatSpinBox(label="fiducial radius [nm]", value=500.0, min=10.0, max=5000.0,
                                      visible=False, tooltip="Localisations this close to a mark belong to it")
        self.csv_path = FileEdit(label="corrected CSV", mode="w", filter="*.csv",
                                 tooltip="Corrected table (ThunderSTORM layout, nm); the trajectory goes beside it "
                                 "as <name>.drift.csv (frame 1-based, dx/dy in nm)")
        self.export_button = PushButton(text="Save corrected table and trajectory")
        super().__init__(viewer, [self.method, self.segment_frames, self.fiducials, self.radius_nm])
        self.extend([self.csv_path, self.export_button])
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(self.fiducials.reset_choices)
        self.method.changed.connect(self._method_chosen)
        self.export_button.changed.connect(self.export)

    def _method_chosen(self, method: str) -> None:
        rcc = method.startswith("RCC")
        self.segment_frames.visible = rcc
        self.fiducials.visible = self.radius_nm.visible = not rcc

    def compute(self, table: pd.DataFrame):
        if self.method.value.startswith("RCC"):
            drift = rcc_drift(table, self.segment_frames.value or None)
        else:
            marks = self.fiducials.value
            if marks is None or marks is self.layer.value:
                raise InputError("mark the fiducials as points in a layer of their own and pick it")
            if len(marks.data) > MAX_FIDUCIALS:
                raise InputError(f"{marks.name!r} has {len(marks.data):,} points: mark at most {MAX_FIDUCIALS} "
                                 "fiducials")
            world = np.asarray(marks.data, float) * marks.scale + marks.translate
            drift = fiducial_drift(table, world[:, [-1, -2]], self.radius_nm.value)
        return drift, apply_drift(table, drift)

    def show(self, result, source: str) -> str:
        drift, corrected = result
        hidden = self.add_points(corrected, f"{source} drift-corrected", "drift-corrected", source)
        return f"{drift.summary()}; corrected layer added{hidden}"

    def draw(self, figure, result, colours) -> None:
        draw_drift(figure, result[0], colours)

    def export(self) -> None:
        self.export_to(self.csv_path, (".csv",), self._write)

    def _write(self, path: Path) -> str:
        drift, corrected = self.result
        write_localizations(path, corrected)
        write_drift_csv(drift_csv_path(path), drift)
        return f"{WROTE}{path} and {drift_csv_path(path)}"


class MergeWidget(AnalysisWidget):
    """Merge each blink's localisations in consecutive frames into one."""

    run_text = "Merge blinks"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self.radius_nm = FloatSpinBox(label="radius [nm] (0: auto)", value=0.0, min=0.0, max=1000.0,
                                      tooltip="Linking radius; 0: 3.5 x the combined uncertainty of the "
                                      "localisation and the blink so far")
        self.max_gap = SpinBox(label="max gap [frames]", value=1, min=0, max=100,
                               tooltip="Frames a blink may go unseen and still continue")
        super().__init__(viewer, [self.radius_nm, self.max_gap])

    def compute(self, table: pd.DataFrame):
        return table, merge_blinks(table, self.radius_nm.value or None, self.max_gap.value)

    def show(self, result, source: str) -> str:
        table, merged = result
        hidden = self.add_points(merged, f"{source} merged", "merged", source)
        return (f"merged {len(table):,} localisations into {len(merged):,} blinks "
                f"({len(table) / max(len(merged), 1):.2f} per blink){hidden}")


class ResolutionWidget(AnalysisWidget):
    """NeNA precision and FRC resolution, with their plots."""

    run_text = "Measure precision and resolution"
    plot_height = 380

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self.pixel_nm = FloatSpinBox(label="FRC pixel [nm]", value=5.0, min=0.5, max=100.0,
                                     tooltip="Pixel of the two half images (coarser for very wide fields)")
        super().__init__(viewer, [self.pixel_nm])

    def compute(self, table: pd.DataFrame):
        return nena(table), frc(table, self.pixel_nm.value)

    def show(self, result, source: str) -> str:
        precision, curve = result
        return f"NeNA {nena_text(precision)} ({precision.distances_nm.size:,} neighbour pairs) · FRC {frc_text(curve)}"

    def draw(self, figure, result, colours) -> None:
        draw_resolution(figure, *result, colours)


class RenderWidget(AnalysisWidget):
    """A super-resolution image, each localisation blurred by its own uncertainty, optionally
    coloured by frame or z, over a frame range, covering the field of its stack where that is open;
    exported as TIFF with its pixel size."""

    run_text = "Render"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self.pixel_nm = FloatSpinBox(label="pixel [nm]", value=10.0, min=1.0, max=1000.0)
        self.method = ComboBox(label="method", choices=["gaussian", "histogram"], value="gaussian",
                               tooltip="gaussian: each localisation a Gaussian of its own uncertainty")
        self.colour_by = ComboBox(label="colour by", choices=["density", "frame", "z"], value="density")
        self.first_frame = SpinBox(label="first frame (1-based)", value=1, min=1, max=10_000_000)
        self.last_frame = SpinBox(label="last frame (1-based, 0: last)", value=0, min=0, max=10_000_000,
                                  tooltip="Included; 0: the last frame of the table")
        self.tiff_path = FileEdit(label="TIFF", mode="w", filter="*.tif", tooltip="ImageJ TIFF, pixel size recorded")
        self.burn_bar = CheckBox(text="burn in a scale bar", value=True)
        self.scale_bar = FloatSpinBox(label="scale bar [nm]", value=0.0, min=0.0, max=1e6,
                                      tooltip="Length of the bar burnt into the exported TIFF; 0: a round fifth of "
                                      "the width")
        self.export_button = PushButton(text="Export TIFF")
        self.field_nm: tuple[float, float] | None = None  # of the stack rendered (_stack_field_nm)
        super().__init__(viewer, [self.pixel_nm, self.method, self.colour_by, self.first_frame, self.last_frame])
        self.extend([self.tiff_path, self.burn_bar, self.scale_bar, self.export_button])
        self.export_button.changed.connect(self.export)

    def start(self) -> None:
        self.field_nm = self._stack_field_nm()  # read here, on the GUI thread
        super().start()

    def _stack_field_nm(self) -> tuple[float, float] | None:
        """(height, width) in nm of the camera stack the localisations come from, where it is open
        (the render then covers its whole field, as Predict's does); None where it is not."""
        for layer in self.viewer.layers:
            if isinstance(layer, Image) and layer.name == self.stack and not layer.rgb:
                return tuple(float(side * scale) for side, scale in zip(layer.data.shape[-2:], layer.scale[-2:]))
        return None

    def compute(self, table: pd.DataFrame):
        table = frame_range(table, self.first_frame.value - 1, (self.last_frame.value or None) and
                            self.last_frame.value - 1)
        shape, pixel = field_of(table), self.pixel_nm.value
        if self.field_nm is not None:  # the stack's field, or more where localisations lie beyond it
            shape = tuple(max(a, b) for a, b in zip(shape, self.field_nm))
        if self.colour_by.value == "density":
            return render(table, shape, pixel, self.method.value), pixel
        by = "z_nm" if self.colour_by.value == "z" else "frame"
        return render_coloured(table, shape, pixel, by, self.method.value), pixel

    def show(self, result, source: str) -> str:
        image, pixel = result
        name = f"{source} render ({pixel:g} nm/px)"
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        kwargs = {"name": name, "scale": (pixel, pixel), "translate": (pixel / 2, pixel / 2),
                  "metadata": {TAG: {"role": "analysis_render", "source": self.stack}}}  # not Predict's "render"
        if image.ndim == 2:
            kwargs.update(colormap="hot", contrast_limits=(0.0, float(max(np.percentile(image, 99.9), 1e-6))))
        self.viewer.add_image(image, rgb=image.ndim == 3, **kwargs)
        return (f"{image.shape[1]} x {image.shape[0]} px of {pixel:g} nm (world coordinates in nm; the exported "
                "TIFF gets a scale bar)")

    def export(self) -> None:
        self.export_to(self.tiff_path, (".tif", ".tiff"), self._write)

    def _write(self, path: Path) -> str:
        image, pixel = self.result
        bar = ""
        if self.burn_bar.value:
            image, length = add_scale_bar(image, pixel, self.scale_bar.value or None)
            bar = f", scale bar {length:g} nm"
        write_image_tiff(path, image, pixel)
        return f"{WROTE}{path} ({pixel:g} nm/px{bar})"


class StatsWidget(AnalysisWidget):
    """Localisations per frame with the bleaching fit, photon and uncertainty histograms."""

    run_text = "Show statistics"
    plot_height = 380

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer, [])

    def compute(self, table: pd.DataFrame):
        return table_stats(table)

    def show(self, result, source: str) -> str:
        s = result.summary
        text = f"{s['localizations']:,} localisations in frames 1-{s['frames']:,} (up to the last with one)"
        if "photons" in s:
            text += f" · median {s['photons']['median']:,.0f} photons"
        if "uncertainty_nm" in s:
            text += f" · median uncertainty {s['uncertainty_nm']['median']:.1f} nm"
        bleach = s["bleaching"]
        text += (" · no bleaching over the movie" if bleach is None
                 else f" · bleaching half-life {bleach['half_life_frames']:,.0f} frames")
        return text

    def draw(self, figure, result, colours) -> None:
        draw_stats(figure, result, colours)
