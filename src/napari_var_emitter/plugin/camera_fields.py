"""The camera set-up both widgets show: fields with units and help, only those that apply to the
camera type, named profiles, and one camera description per viewer that both widgets share and
that is remembered between sessions. Values merge by io.camera.merge_camera_values, the rule
the CLI uses: the remembered entry, then what the image's file states, then a chosen profile."""

from __future__ import annotations

import dataclasses
import json
import weakref
from typing import Any

from magicgui.widgets import ComboBox, Container, FileEdit, FloatSpinBox, Label, LineEdit, PushButton
from napari.utils.notifications import show_error, show_info
from psygnal import Signal

from ..errors import InputError
from ..io.atomic import write_text_atomic
from ..io.camera import CAMERA_TYPES, EMCCD_ONLY, FIELD_INFO, MAP_FIELDS, Camera, merge_camera_values
from ..io.camera_profile import (config_dir, profile_path, read_camera_profile, saved_profiles,
                                 write_camera_profile)

# field -> (min, max, step, decimals)
_NUMBERS = {"pixel_size_nm": (1.0, 10000.0, 1.0, 2), "baseline_adu": (-1e5, 1e5, 1.0, 2),
            "e_per_adu": (1e-4, 1e3, 0.01, 6), "adu_per_e": (1e-4, 1e4, 0.01, 6), "em_gain": (1.0, 1e4, 1.0, 1),
            "qe": (0.01, 1.0, 0.01, 3), "read_noise_e": (0.0, 1e3, 0.1, 3)}
NO_PROFILE = "(none: the file's values)"


class SharedCamera:
    """The camera values last entered in a viewer, shared by its widgets; saved to camera.json
    in the config folder so the next session starts from them."""

    changed = Signal(dict, object)  # (values, the panel that set them)

    def __init__(self) -> None:
        self.path = config_dir() / "camera.json"
        try:
            saved = dict(json.loads(self.path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            saved = {}
        known = {f.name for f in dataclasses.fields(Camera)}
        self.values: dict[str, Any] = {k: v for k, v in saved.items() if k in known}

    def set(self, values: dict[str, Any], sender) -> None:
        if values == self.values:
            return
        self.values = dict(values)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.path, json.dumps(self.values, indent=2))
        self.changed.emit(self.values, sender)


_SHARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def shared_camera(viewer) -> SharedCamera:
    """The one SharedCamera of this viewer."""
    if viewer not in _SHARED:
        _SHARED[viewer] = SharedCamera()
    return _SHARED[viewer]


class CameraFields(Container):
    """Camera set-up: profile choice and saving, a plain-words note on what the file did not
    state, and one field per camera value; `camera()` validates."""

    def __init__(self, viewer) -> None:
        self.shared = shared_camera(viewer)
        self._quiet, self._stated = False, {}
        self.profile = ComboBox(label="profile", choices=self._profile_choices,
                                tooltip="A saved camera description; it overrides what the file states")
        self.profile_name = LineEdit(label="save as", tooltip="Name for a new profile of the values below")
        self.save_button = PushButton(text="Save profile",
                                      tooltip=f"Save the values below as a profile (in {config_dir() / 'cameras'})")
        self.note = Label(value="")
        self.note.native.setWordWrap(True)
        self.fields: dict[str, Any] = {}
        for name, (low, high, step, decimals) in _NUMBERS.items():
            info = FIELD_INFO[name]
            self.fields[name] = FloatSpinBox(value=getattr(Camera(), name, 1.0), min=low, max=high, step=step,
                                             label=info.label, tooltip=info.help)
            self.fields[name].native.setDecimals(decimals)
        self.fields["type"] = ComboBox(choices=CAMERA_TYPES, value=Camera.type, label=FIELD_INFO["type"].label,
                                       tooltip=FIELD_INFO["type"].help)
        for name in MAP_FIELDS:
            self.fields[name] = FileEdit(mode="r", filter="*.npy *.tif *.tiff", nullable=True,
                                         label=FIELD_INFO[name].label, tooltip=FIELD_INFO[name].help)
        order = ("type", "pixel_size_nm", "baseline_adu", "e_per_adu", "adu_per_e", "em_gain", "qe", "read_noise_e",
                 *MAP_FIELDS)
        super().__init__(widgets=[self.profile, self.profile_name, self.save_button, self.note,
                                  *(self.fields[name] for name in order)])
        for name, widget in self.fields.items():
            widget.changed.connect(lambda value, name=name: self._edited(name))
        self.profile.changed.connect(self._apply_profile)
        self.save_button.changed.connect(self.save_profile)
        self.shared.changed.connect(self._shared_changed)
        self._set_fields(merge_camera_values(self.shared.values)[0])

    # ---- values -----------------------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        """The camera values in the fields (maps as path strings, None where not given)."""
        values = {name: widget.value for name, widget in self.fields.items() if name != "adu_per_e"}
        for name in MAP_FIELDS:
            values[name] = str(values[name]) if values[name] else None
        if values["type"] == "sCMOS":
            values["em_gain"] = 1.0
        else:
            values.update(dict.fromkeys(MAP_FIELDS))
        return values

    def camera(self) -> Camera:
        return Camera.from_dict(self.values())

    def fill(self, stated: dict) -> list[str]:
        """Fields from the remembered values, then what a file states, then the chosen profile
        (one merge rule, as in the CLI); returns the names neither file nor profile gave."""
        self._stated = {k: v for k, v in stated.items() if v is not None}
        profile = self._profile_values()
        values, _ = merge_camera_values(self.shared.values, self._stated, profile)
        _, missing = merge_camera_values(self._stated, profile)
        self._set_fields(values)
        self._edited(None)
        if missing:
            source = "your last entry" if self.shared.values else "defaults"
            names = ", ".join(FIELD_INFO[name].label for name in missing)
            self.note.value = f"Not stated by the file: {names}. These come from {source}: check them."
        else:
            self.note.value = ""
        return missing

    def fill_from(self, layer) -> list[str]:
        """`fill` with what an image layer's file stated (metadata["camera"])."""
        return self.fill({} if layer is None else layer.metadata.get("camera", {}))

    def _set_fields(self, values: dict[str, Any]) -> None:
        self._quiet = True
        try:
            for name, widget in self.fields.items():
                if name in values and name != "adu_per_e":
                    widget.value = values[name]
            self.fields["adu_per_e"].value = 1.0 / self.fields["e_per_adu"].value
        finally:
            self._quiet = False
        self._show_for_type()

    def _edited(self, name: str | None) -> None:
        """A field changed: keep the two gains each other's inverse, show what applies, share."""
        if self._quiet:
            return
        self._quiet = True
        try:
            if name == "adu_per_e":
                self.fields["e_per_adu"].value = 1.0 / self.fields["adu_per_e"].value
            elif name == "e_per_adu":
                self.fields["adu_per_e"].value = 1.0 / self.fields["e_per_adu"].value
        finally:
            self._quiet = False
        self._show_for_type()
        self.shared.set(self.values(), self)

    def _shared_changed(self, values: dict, sender) -> None:
        if sender is not self:
            self._set_fields(values)

    def _show_for_type(self) -> None:
        emccd = self.fields["type"].value == "EMCCD"
        for name in EMCCD_ONLY:
            self.fields[name].visible = emccd
        for name in MAP_FIELDS:
            self.fields[name].visible = not emccd

    # ---- profiles ---------------------------------------------------------------------------
    def _profile_choices(self, _widget=None) -> list[str]:
        return [NO_PROFILE, *saved_profiles()]

    def _profile_values(self) -> dict[str, Any]:
        name = self.profile.value
        if not name or name == NO_PROFILE:
            return {}
        path = saved_profiles().get(name)
        return read_camera_profile(path) if path else {}

    def _apply_profile(self, _name=None) -> None:
        try:
            self.fill(self._stated)
        except InputError as exc:
            show_error(str(exc))

    def save_profile(self) -> None:
        """Save the fields as a profile named in 'save as', and select it."""
        name = self.profile_name.value.strip()
        try:
            path = write_camera_profile(profile_path(name), self.camera(), name=name)
        except InputError as exc:
            show_error(str(exc))
            return
        self.profile.reset_choices()
        self.profile.value = name
        show_info(f"camera profile {name!r} saved: {path}")
