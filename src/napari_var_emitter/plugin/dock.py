"""Dock widgets that fit a laptop screen: each of the plugin's widgets scrolls inside its dock
instead of growing the napari window (1366x768 with Predict and an analysis widget open)."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QScrollArea, QWidget

SCROLLBAR_PX = 20  # room beside the widest row for the vertical scroll bar


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
