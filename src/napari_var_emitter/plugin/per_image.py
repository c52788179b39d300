"""Fields each image has its own of (output files, a PSF sigma), so that one dataset's settings
never carry over to the next one a user opens in the same session."""

from __future__ import annotations


class PerImageFields:
    """`fields` (magicgui value widgets) hold, for each image chosen, what they held when it was
    last chosen, else what they held at the start (unset: each widget's default). Images are told
    apart by image_key."""

    def __init__(self, fields: tuple, layer) -> None:
        self.fields = fields
        self.values: dict[int | str | None, tuple] = {}
        self._image, self._unset = image_key(layer), self._current()

    def chosen(self, layer) -> None:
        """Keep the fields of the image chosen so far; show those of `layer`."""
        self.values[self._image] = self._current()
        self._image = image_key(layer)
        for field, value in zip(self.fields, self.values.get(self._image, self._unset), strict=True):
            field.value = value

    def _current(self) -> tuple:
        return tuple(field.value for field in self.fields)


def image_key(layer) -> int | str | None:
    """Which dataset an image layer is: the file it was read from (a stack opened again is the same
    dataset, with the settings it had), else its data (a renamed layer keeps its settings)."""
    if layer is None:
        return None
    return layer.metadata.get("path") or id(layer.data)
