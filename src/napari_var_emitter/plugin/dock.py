"""Dock widgets that fit a laptop screen: each of the plugin's widgets scrolls inside its dock
instead of growing the napari window (1366x768 with Predict and an analysis widget open)."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QComboBox, QScrollArea, QWidget

SCROLLBAR_PX = 20  # room beside the widest row for the vertical scroll bar
COMBO_CHARS = 16  # a list of files or models is this many characters wide; longer names are elided


def fixed_width_combo(combo) -> None:
    """A magicgui ComboBox that does not widen the dock with its longest choice (a model file's
    folder and name, say): as wide as COMBO_CHARS characters, its list as wide as it needs."""
    combo.native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.native.setMinimumContentsLength(COMBO_CHARS)


class ScrollingDock:
    """Mixin for a top-level magicgui Container made with scrollable=True. napari docks a magicgui
    widget's `native`: here that is the scroll area around the widget, whose own rows live in
    `body` (add to body.layout())."""

    @property
    def native(self) -> QScrollArea:
        return self.root_native_widget

    @property
    def body(self) -> QWidget:
        """The widget inside the scroll area."""
        return self.root_native_widget.widget()

    def fit_width(self) -> None:
        """As wide as the widest row (call once every row is in), so that it scrolls up and down
        only; should napari's style widen a row later, a horizontal scroll bar shows the rest."""
        self.root_native_widget.setMinimumWidth(self.body.minimumSizeHint().width() + SCROLLBAR_PX)
        self.root_native_widget.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
