"""Editable camera fields, pre-filled from an image layer's metadata."""

from __future__ import annotations

import dataclasses

from magicgui.widgets import ComboBox, Container, FloatSpinBox

from ..io.camera import CAMERA_TYPES, Camera

_LIMITS = {"pixel_size_nm": (1.0, 10000.0, 1.0), "baseline_adu": (-1e5, 1e5, 1.0), "e_per_adu": (1e-3, 1e3, 0.01),
           "em_gain": (1.0, 1e4, 1.0), "qe": (0.01, 1.0, 0.01), "read_noise_e": (0.0, 1e3, 0.1)}


class CameraFields(Container):
    """One field per Camera value; `fill` takes what a file stated, `camera()` validates."""

    def __init__(self) -> None:
        defaults = Camera()
        self.fields = {name: FloatSpinBox(value=getattr(defaults, name), min=lo, max=hi, step=step,
                                          label=name.replace("_", " "))
                       for name, (lo, hi, step) in _LIMITS.items()}
        self.fields["type"] = ComboBox(choices=CAMERA_TYPES, value=defaults.type, label="camera type")
        super().__init__(widgets=list(self.fields.values()), label="camera")

    def fill(self, stated: dict) -> list[str]:
        """Set the fields a file states, defaults elsewhere; returns the names not stated."""
        defaults = dataclasses.asdict(Camera())
        for name, widget in self.fields.items():
            widget.value = stated.get(name) if stated.get(name) is not None else defaults[name]
        return [name for name in self.fields if stated.get(name) is None]

    def fill_from(self, layer) -> list[str]:
        """`fill` with what an image layer's file stated (metadata["camera"]); nothing for None."""
        return [] if layer is None else self.fill(layer.metadata.get("camera", {}))

    def camera(self) -> Camera:
        return Camera(**{name: widget.value for name, widget in self.fields.items()})
