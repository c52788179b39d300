"""Which frames a widget's run takes: every frame, the frame on screen, or first to last (1-based,
as in the CSV and ImageJ; shared by the Predict and 3-D widgets)."""

from __future__ import annotations

from magicgui.widgets import ComboBox, SpinBox

from ..errors import InputError
from .layers import frame_into_view, slider_frame, stack_of
from .per_image import image_key

FRAME_MODES = ("all frames", "current frame", "range")


class FrameRange:
    """`mode`, `first`, `last` (magicgui widgets, for the widget's own list); `follow(layer)` when
    an image is chosen, `span(...)` when a run starts."""

    def __init__(self, viewer) -> None:
        self.viewer = viewer
        self.mode = ComboBox(label="frames", choices=FRAME_MODES, value="all frames",
                             tooltip="Every frame, the frame on screen, or frames first..last (1-based, as in "
                             "the CSV and ImageJ)")
        self.first = SpinBox(label="first frame (1-based)", value=1, min=1, max=10**8, tooltip="Included")
        self.last = SpinBox(label="last frame (1-based)", value=1, min=1, max=10**8,
                            tooltip="Included; set to the stack's last frame when an image is chosen")
        self.image, self.kept = None, {}  # the image chosen (image_key); (mode, first, last, frames) of each

    def follow(self, layer) -> None:
        """The frames chosen for this image when it was last chosen (told apart as the other fields
        tell datasets apart, per_image.image_key: by its file, so a stack opened again gets them
        back; else by its data), else the same choice over its whole stack: 1 to its last frame (an
        image that is no stack is refused when the run starts, with the reason)."""
        if self.image is not None:
            self.kept[self.image] = (self.mode.value, self.first.value, self.last.value, self.first.max)
        self.image = image_key(layer)
        try:
            n_frames = stack_of(layer)[0].shape[0] if layer is not None else None
        except InputError:
            n_frames = None
        if n_frames:
            self.first.max = self.last.max = n_frames
            mode, first, last, of = self.kept.get(self.image, (self.mode.value, 1, n_frames, n_frames))
            if of != n_frames:  # another stack's entry (Python reuses the id of data freed since)
                first, last = 1, n_frames
            self.mode.value, self.first.value, self.last.value = mode, first, last

    def span(self, layer, n_frames: int, current_only: bool = False) -> tuple[int, int]:
        """[first, stop) of the frames to run on (0-based), of `layer`'s `n_frames`."""
        if current_only or self.mode.value == "current frame":
            current = slider_frame(self.viewer, layer)
            if not 0 <= current < n_frames:  # a longer stack, hidden, sets the slider's range
                frame_into_view(self.viewer, layer)
                raise InputError(f"the frame slider was on frame {current + 1:,}, beyond the {n_frames:,} frames of "
                                 f"{layer.name}; it is now on its last frame: press again to run on that one")
            return current, current + 1
        if self.mode.value == "range":
            if self.first.value > self.last.value:
                raise InputError(f"first frame {self.first.value} is after last frame {self.last.value}: make the "
                                 "first frame the earlier one (both included)")
            if not 1 <= self.first.value <= self.last.value <= n_frames:
                raise InputError(f"frames {self.first.value} to {self.last.value}: the stack has frames 1 to "
                                 f"{n_frames} (first frame and last frame, both included)")
            return self.first.value - 1, self.last.value
        return 0, n_frames
