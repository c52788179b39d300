"""A colour bar for a Points layer coloured by one of its features (napari draws none for Points):
the colours its border takes, from the low end of its contrast limits to the high end, labelled
with the feature and the limits in their unit."""

from __future__ import annotations

import numpy as np
from magicgui.widgets import Container, Label
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import QLabel

BAR_PX = (160, 12)  # width, height of the bar


def colour_ramp_rgb(colormap, width: int, height: int) -> np.ndarray:
    """(height, width, 3) uint8: a napari Colormap from its low end (left) to its high end (right)."""
    rgba_W4 = np.asarray(colormap.map(np.linspace(0.0, 1.0, width)), np.float64)
    rgb_W3 = np.clip(np.round(255 * rgba_W4[:, :3]), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.broadcast_to(rgb_W3, (height, width, 3)))


def colouring_of(layer, feature: str) -> tuple[object, tuple[float, float]] | None:
    """(colormap, contrast limits) of a Points layer whose border colour follows `feature`; None
    when it is coloured otherwise."""
    properties = getattr(layer, "_border", None)
    properties = getattr(properties, "color_properties", None)
    if properties is None or properties.name != feature:
        return None
    low, high = layer.border_contrast_limits
    return layer.border_colormap, (float(low), float(high))


class ColourBar(Container):
    """"<name> [unit] low [bar] high", or hidden when the layer shown is not coloured by the feature."""

    def __init__(self, feature: str, name: str, unit: str) -> None:
        self.feature, self.quantity, self.unit = feature, name, unit
        self.low, self.high = Label(value=""), Label(value="")
        super().__init__(layout="horizontal", labels=False, widgets=[self.low, self.high])
        self.bar = QLabel()
        self.native.layout().insertWidget(1, self.bar)
        self.native.layout().addStretch()
        self.native.layout().setContentsMargins(0, 0, 0, 0)
        self.visible = False

    def show_layer(self, layer) -> None:
        """Show the colours of `layer` (None, or one coloured otherwise: hide the bar)."""
        colouring = colouring_of(layer, self.feature) if layer is not None else None
        if colouring is None:
            self.visible = False
            return
        colormap, (low, high) = colouring
        width, height = BAR_PX
        self._ramp = colour_ramp_rgb(colormap, width, height)  # QImage reads this memory: kept alive with it
        image = QImage(self._ramp.data, width, height, 3 * width, QImage.Format.Format_RGB888)
        self.bar.setPixmap(QPixmap.fromImage(image))
        self.low.value, self.high.value = f"{self.quantity} [{self.unit}] {low:+.0f}", f"{high:+.0f}"
        self.visible = True
