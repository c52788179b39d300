"""Fields each image has its own of (output files, a PSF sigma, a calibration file), so that one
dataset's settings never carry over to the next one a user opens in the same session."""

from __future__ import annotations


class PerImageFields:
    """`fields` (magicgui value widgets) hold, for each image chosen, what they held when it was
    last chosen, else what they held at the start (unset: each widget's default). Images are told
    apart by image_key; what an image without a file held goes when it is closed (Python gives a
    later stack the id of its data again, which would then get the closed one's)."""

    def __init__(self, fields: tuple, layer, viewer) -> None:
        self.fields, self.viewer = fields, viewer
        self.values: dict[int | str | None, tuple] = {}
        self._image, self._unset, self._closed = image_key(layer), self._current(), False
        viewer.layers.events.removed.connect(self._layer_removed)

    def chosen(self, layer) -> None:
        """Keep the fields of the image chosen so far (unless it was closed); show those of `layer`."""
        if not self._closed:
            self.values[self._image] = self._current()
        self._image, self._closed = image_key(layer), False
        for field, value in zip(self.fields, self.values.get(self._image, self._unset), strict=True):
            field.value = value

    def _layer_removed(self, event) -> None:
        key = image_key(event.value)
        if not isinstance(key, int) or any(image_key(layer) == key for layer in self.viewer.layers):
            return  # a file's: opened again, it is the same dataset, with its settings
        self.values.pop(key, None)
        self._closed = self._closed or key == self._image

    def _current(self) -> tuple:
        return tuple(field.value for field in self.fields)


def image_key(layer) -> int | str | None:
    """Which dataset an image layer is: the file it was read from (a stack opened again is the same
    dataset, with the settings it had), else its data (a renamed layer keeps its settings)."""
    if layer is None:
        return None
    return layer.metadata.get("path") or id(layer.data)
