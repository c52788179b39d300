"""The "Filter localisations" widget: a histogram and a kept range per quality column of a
Points layer, applied live (points outside are hidden), shown as the expression `var-emitter
filter --where` takes, exportable as CSV."""

from __future__ import annotations

import weakref
from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, FloatSpinBox, LineEdit, PushButton
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.layers import Points
from qtpy.QtCore import QTimer

from ..analysis.filter import filter_mask, range_expression
from ..analysis.plots import style
from ..analysis.table_checks import DEPTH_COLUMNS, has_z
from ..io.localizations_csv import write_localizations_csv
from .dock import ScrollingDock, fixed_width_combo, number_boxes_take_typed_entries
from .job_controls import StatusLabel
from .layers import FollowShown, clear_file, layer_choices, pick_shown, stack_name, table_from_layer
from .theme import theme_colours
from .writers import WROTE, export_file

# column -> label with unit, in the order shown
COLUMNS = {"z_nm": "z [nm]", "photons": "photons", "uncertainty_nm": "uncertainty [nm]",
           "uncertainty_x_nm": "uncertainty x [nm]", "uncertainty_y_nm": "uncertainty y [nm]",
           "uncertainty_z_nm": "uncertainty z [nm]", "probability": "probability",
           "background": "background [photons/px]", "sigma_nm": "PSF σ [nm]",
           "fitted": "fitted (1: MLE fit, 0: network, 2: split off)",
           "significance": "significance [sd]"}  # of a spot against background only, as in the CSV
BINS = 60
HISTOGRAM_PX = 80  # the least height of each histogram (the dock scrolls when they need more)
# of its figure: room for the ticks' labels (the column's name is its range's, just under it)
HISTOGRAM_MARGINS = {"left": 0.12, "right": 0.97, "bottom": 0.3, "top": 0.95}
BOX_BUTTONS_PX = 64  # a range box's up and down buttons and margins, beside its number
REFRESH_DELAY_MS = 200  # a layer's new data and features (set one after the other) are taken in once
WATCHED_EVENTS = ("data", "features")  # of the layer filtered


class FilterWidget(ScrollingDock, Container):
    """Pick a Points layer; set the kept range of each quality column under its histogram."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self.viewer = viewer
        self.layer = ComboBox(label="localisations", choices=layer_choices(viewer, Points), nullable=True,
                              tooltip="A Points layer with photons, uncertainty, ... (from Predict or a file)")
        fixed_width_combo(self.layer)
        pick_shown(self.layer)
        self.ranges: dict[str, tuple[FloatSpinBox, FloatSpinBox]] = {}
        self.histograms: dict[str, Figure] = {}  # each column's, drawn on a canvas above its range
        self.rows = Container(widgets=[], labels=False)
        self.expression = LineEdit(label="expression", tooltip="The same filter for the command line: "
                                   "var-emitter filter TABLE --out OUT --where '<this>'; only the ranges narrowed")
        self.expression.native.setReadOnly(True)
        self.expression.native.setPlaceholderText("no range narrowed: every localisation")
        self.status = StatusLabel()  # wraps: a long layer name or file path said there widened the dock column
        self.csv_path = FileEdit(label="CSV", mode="w", filter="*.csv",
                                 tooltip="ThunderSTORM layout, nm, 1-based frames")
        self.export_button = PushButton(text="Export kept localisations")
        self.reset_button = PushButton(text="Keep all", tooltip="Widen every range to the data's")
        super().__init__(widgets=[self.layer, self.rows, self.expression, self.reset_button, self.csv_path,
                                  self.export_button], scrollable=True)
        # each range under its histogram, the count pinned under the scrolling rows: what a value typed
        # does is in view (trying the plugin, eight histograms stood above all the boxes, the count below)
        self.make_dock(pinned=(self.status,))
        self.watched = None  # the layer whose changes of data refresh the filter
        self.narrowed_of: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # _narrowed() of layers left
        self.bounds: dict[str, tuple[float, float]] = {}  # each column's range over the data, as last built
        self.refresh_timer = QTimer(self.body, singleShot=True, interval=REFRESH_DELAY_MS)
        self.refresh_timer.timeout.connect(self._data_changed)
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(self.layer.reset_choices)
        self.layer.changed.connect(self._layer_chosen)
        self.follow_shown = FollowShown(viewer, self.layer, lambda: self.native.parent() is not None,
                                        within_dataset=True)
        self.export_button.changed.connect(self.export_csv)
        self.reset_button.changed.connect(self.keep_all)
        viewer.events.theme.connect(lambda _: self._draw())
        self._layer_chosen(self.layer.value)

    def _columns(self, layer) -> list[str]:
        """The columns of COLUMNS the layer has (z only in 3-D: 2-D truth has z = 0)."""
        features = layer.features if layer is not None else None
        if features is None or not len(features):
            return []
        return [c for c in COLUMNS if c in features and (c not in DEPTH_COLUMNS or has_z(features))]

    def _layer_chosen(self, layer) -> None:
        """Filter `layer` with the ranges narrowed on it when it was last filtered (none the first
        time); those of the layer filtered so far are kept for it."""
        if self.watched is not None:
            self.narrowed_of[self.watched] = self._narrowed()
            if layer is None or stack_name(layer) != stack_name(self.watched):
                clear_file(self.csv_path)
        self._watch(layer)
        self._build(layer, self.narrowed_of.get(layer, {}) if layer is not None else {})

    def _watch(self, layer) -> None:
        """Follow `layer`'s changes (Predict run again into it; hidden), no longer the last one's."""
        for event in WATCHED_EVENTS:
            if self.watched is not None:
                getattr(self.watched.events, event).disconnect(self._layer_changed)
            if layer is not None:
                getattr(layer.events, event).connect(self._layer_changed)
        if self.watched is not None:
            self.watched.events.visible.disconnect(self._say_kept)
        if layer is not None:
            layer.events.visible.connect(self._say_kept)
        self.watched = layer

    def _layer_changed(self, event) -> None:
        if self.native.parent() is None:  # closed (napari takes a closed dock's widget out): no more filtering
            self._watch(None)
        else:
            self.refresh_timer.start()

    def _narrowed(self) -> dict[str, tuple[float | None, float | None]]:
        """Per column, the (from, to) bounds the user narrowed (None where a bound spans the data)."""
        return {column: tuple(box.value if box.value != bound else None for box, bound in zip(boxes, bounds))
                for (column, boxes), bounds in zip(self.ranges.items(), self.bounds.values())}

    def _data_changed(self) -> None:
        """The layer's new localisations: histograms and count again, each range the user narrowed
        kept (the rest span the new data). A layer emptied for a new run keeps the ranges as they are."""
        layer = self.layer.value
        if layer is None or not len(layer.data) or len(layer.features) != len(layer.data):
            return
        self._build(layer, self._narrowed())

    def _build(self, layer, narrowed: dict[str, tuple[float | None, float | None]]) -> None:
        """A range per column of `layer` spanning its data, or what `narrowed` keeps of one; applied."""
        self.rows.clear()
        self.ranges, self.bounds, self.histograms = {}, {}, {}
        for column in self._columns(layer):
            values = layer.features[column].to_numpy(float)
            # at the boxes' 3 decimals, outward: every point is kept until a range is narrowed
            low, high = np.floor(np.min(values) * 1e3) / 1e3, np.ceil(np.max(values) * 1e3) / 1e3
            kept = narrowed.get(column, (None, None))
            start, stop = (bound if value is None else value for value, bound in zip(kept, (low, high)))
            step = (high - low) / 100 or 1.0
            spin = {"min": min(low - abs(low) - 1, start), "max": max(high + abs(high) + 1, stop), "step": step}
            lo, hi = FloatSpinBox(label=f"{COLUMNS[column]} from", **spin), FloatSpinBox(label="to", **spin)
            hi.native.setAccessibleName(f"{COLUMNS[column]} to")  # what its messages call it
            # wide enough for the data's numbers at three decimals, and the box's buttons
            shown = "0" * max(len(f"{bound:.3f}") for bound in (low, high))
            for box, value in ((lo, start), (hi, stop)):
                number_boxes_take_typed_entries(box.native)
                box.native.setMinimumWidth(box.native.fontMetrics().horizontalAdvance(shown) + BOX_BUTTONS_PX)
                box.native.setDecimals(3)  # before the value: a box rounds what it is given to its decimals
                box.value = value
                box.changed.connect(self.apply)
            self.ranges[column], self.bounds[column] = (lo, hi), (low, high)
            row = Container(widgets=[lo, hi])
            figure = Figure(figsize=(4, HISTOGRAM_PX / 100))
            canvas = FigureCanvasQTAgg(figure)
            canvas.setMinimumHeight(HISTOGRAM_PX)
            row.native.layout().insertWidget(0, canvas)
            self.histograms[column] = figure
            self.rows.append(row)
        self.fit_width_soon()  # the rows of the columns shown (their labels' lengths) in view, not scrolled sideways
        self.apply()

    def keep_all(self) -> None:
        self._build(self.layer.value, {})

    def current_expression(self) -> str:
        """The sides of the ranges narrowed from their columns' spans ("" where none is: every row
        kept; a side left at the data's bound is open, so that the CLI on another table keeps what
        lies beyond it)."""
        narrowed = {column: (lo.value if lo.value > self.bounds[column][0] else None,
                             hi.value if hi.value < self.bounds[column][1] else None)
                    for column, (lo, hi) in self.ranges.items()}
        return range_expression(narrowed)

    def apply(self, *_) -> None:
        """Hide the points outside the ranges, update histograms, expression and count."""
        layer = self.layer.value
        if layer is None or not self.ranges:
            self.status.value = "pick a Points layer with photons, uncertainty or probability columns"
            self.expression.value = ""
            self._draw()
            return
        expression = self.current_expression()
        mask = filter_mask(layer.features, expression)
        layer.shown = mask
        self.expression.value = expression
        self._say_kept()
        self._draw(mask)

    def _say_kept(self, *_) -> None:
        """How many the Filter keeps, and where the layer filtered is hidden, that it is (filtering it
        changed nothing in view, trying the plugin)."""
        layer = self.layer.value
        if layer is None or not self.ranges:
            return
        hidden = "" if layer.visible else f" ({layer.name} is hidden: tick its eye to see them)"
        self.status.value = f"kept {int(layer.shown.sum()):,} of {len(layer.shown):,} localisations{hidden}"

    def _draw(self, mask=None) -> None:
        """One histogram per column (all, and kept), in napari's theme colours."""
        colours = theme_colours(self.viewer)
        layer = self.layer.value
        for column, figure in self.histograms.items():
            figure.clear()
            figure.set_facecolor(colours.background)
            figure.subplots_adjust(**HISTOGRAM_MARGINS)
            axes = figure.add_subplot()
            style(axes, colours)
            values = layer.features[column].to_numpy(float)
            bins = np.histogram_bin_edges(values, BINS)
            axes.hist(values, bins, color=colours.foreground, alpha=0.35)
            if mask is not None:
                axes.hist(values[mask], bins, color=colours.accent)
            lo, hi = self.ranges[column]
            axes.axvspan(lo.value, hi.value, color=colours.accent, alpha=0.12)
            figure.canvas.draw_idle()

    def export_csv(self) -> None:
        if self.refresh_timer.isActive():  # new data not taken in yet: the filter on them first
            self.refresh_timer.stop()
            self._data_changed()
        layer = self.layer.value

        def write(path: Path) -> str:
            kept = table_from_layer(layer)  # the points shown: those the ranges keep
            write_localizations_csv(path, kept)
            return f"{WROTE}{len(kept):,} localisations to {path}"

        export_file(self.csv_path.value, (".csv",), write, self.status,
                    "nothing to export: pick a Points layer" if layer is None else None)
