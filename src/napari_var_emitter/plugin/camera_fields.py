"""The camera set-up both widgets show: fields with units and help, only those that apply to the
camera type, named profiles, and one camera description per viewer that both widgets share and
that is remembered between sessions. Values merge by io.camera.merge_camera_values, the rule
the CLI uses: the remembered entry, then what the image's file states, then a chosen profile."""

from __future__ import annotations

import dataclasses
import json
import weakref
from pathlib import Path
from typing import Any

from magicgui.widgets import ComboBox, Container, FileEdit, FloatSpinBox, LineEdit, PushButton
from napari.layers import Image
from napari.utils.notifications import show_error, show_info, show_warning
from psygnal import Signal
from qtpy.QtGui import QValidator
from qtpy.QtWidgets import QScrollArea

from ..errors import InputError
from ..io.atomic import write_text_atomic
from ..io.camera import CAMERA_TYPES, EMCCD_ONLY, FIELD_INFO, MAP_FIELDS, Camera, merge_camera_values
from ..io.camera_profile import (config_dir, profile_path, read_camera_profile, saved_profiles,
                                 write_camera_profile)
from ..io.pixel_calibration import read_map
from .job_controls import StatusLabel
from .layers import fit_view, place_image
from .per_image import image_key

REPLACED_BY_MAP = {"baseline_adu": "offset_map", "read_noise_e": "variance_map", "e_per_adu": "gain_map",
                   "adu_per_e": "gain_map"}  # camera values that a per-pixel map replaces
# field -> (min, max, step, decimals); ADU/e⁻ shows the e⁻/ADU kept (6 decimals) inverted, to 4: 2.11 typed stays 2.1100
_NUMBERS = {"pixel_size_nm": (1.0, 10000.0, 1.0, 2), "baseline_adu": (-1e5, 1e5, 1.0, 2),
            "e_per_adu": (1e-4, 1e3, 0.01, 6), "adu_per_e": (1e-4, 1e4, 0.01, 4), "em_gain": (1.0, 1e4, 1.0, 1),
            "qe": (0.01, 1.0, 0.01, 3), "read_noise_e": (0.0, 1e3, 0.1, 3)}
NO_PROFILE = "(none: the file's values)"
STACK_KEY = "stack"  # in camera.json: the stack the last entry was made for
DEFAULTS_NOTE = "Defaults: no camera entered yet. Set your camera's values (its manual or test sheet)."


class SharedCamera:
    """The camera of a viewer, shared by its widgets: `values`, what the panels show now, and
    `typed`, the user's last entry: the values they entered (typed, or from a chosen profile) in
    use for the stack they last entered one for, those it took from the entry before included,
    so that a stack whose file states nothing takes one camera's entries, not fields of several
    (it took A's maps beside B's pixel size); `typed_stack`, that stack's name. Both are saved to
    camera.json in the config folder, so the next session starts from them; empty on a fresh
    install, where defaults fill in; a value a file stated is not the user's entry and does not
    carry to the next stack. `per_image`: every value shown when the user last entered one
    while each image was chosen (per_image.image_key: its file, else its data), restored when it is
    chosen again, or its file opened again; `entered_for`: of those, (the fields the user entered
    while it was chosen, every field that was the user's entry then); the rest were defaults or
    what the file stated; `told`: the images whose camera a notification said came from the last
    entry (once per image, whichever panel)."""

    changed = Signal(dict, object, bool)  # (values, the panel that set them, whether they bring a new entry)

    def __init__(self) -> None:
        self.path = config_dir() / "camera.json"
        try:
            saved = dict(json.loads(self.path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            saved = {}
        known = {f.name for f in dataclasses.fields(Camera)}
        self.typed: dict[str, Any] = {k: v for k, v in saved.items() if k in known}
        self.typed_stack: str | None = saved.get(STACK_KEY)  # None: saved by a version that did not say
        self.values: dict[str, Any] = dict(self.typed)
        self.per_image: dict[int | str, dict[str, Any]] = {}
        self.entered_for: dict[int | str, tuple[set[str], set[str]]] = {}
        self.told: set[int | str] = set()

    def set(self, values: dict[str, Any], sender, typed_for: int | str | None = None,
            entered: dict[str, Any] | None = None, set_up: dict[str, Any] | None = None,
            stack: str = "") -> None:
        """Show `values` in every panel; typed_for (an image's per_image.image_key, or -1 for none):
        the user entered `entered` (some of `values`) for the stack named `stack`, so `values` are
        remembered for that image, and `set_up` (their entries in use for it) becomes the last
        entry, saved for the next session."""
        entries = (self.entered_for.get(typed_for), dict(self.typed))  # what the user had entered before
        if typed_for is not None:
            if set_up != self.typed or stack != self.typed_stack:
                self.typed, self.typed_stack = dict(set_up or {}), stack
                self.path.parent.mkdir(parents=True, exist_ok=True)
                write_text_atomic(self.path, json.dumps({**self.typed, STACK_KEY: stack}, indent=2))
            self.per_image[typed_for] = dict(values)
            here = self.entered_for.get(typed_for, (set(), set()))[0] | set(entered or {})
            self.entered_for[typed_for] = here, self.entered()
        entry = typed_for is not None and entries != (self.entered_for.get(typed_for), self.typed)
        if values == self.values and not entry:  # an entry is said even where it changes no value
            return
        self.values = dict(values)
        self.changed.emit(self.values, sender, entry)

    def entered(self) -> set[str]:
        """The fields the user has entered a value into (cleared maps not counted)."""
        return {name for name, value in self.typed.items() if value is not None}


_SHARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _fitting_maps(values: dict[str, Any], frame_shape: tuple[int, int] | None) -> tuple[dict[str, Any], list]:
    """`values` without the calibration maps that cannot be read or do not have frame_shape;
    and (field, why) for each left out."""
    if frame_shape is None:
        return values, []
    kept, unfit = dict(values), []
    for name in MAP_FIELDS:
        if not values.get(name):
            continue
        try:
            shape = tuple(read_map(values[name]).shape)
        except InputError as exc:
            shape, why = None, str(exc)
        else:
            why = f"{shape[-1]}×{shape[0]} px, for frames of {frame_shape[1]}×{frame_shape[0]} px"
        if shape != tuple(frame_shape):
            kept[name] = None
            unfit.append((name, why))
    return kept, unfit


def _by_reason(unfit: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """(why, [field, …]) from _fitting_maps' (field, why): the fields left out for one reason together."""
    reasons: dict[str, list[str]] = {}
    for name, why in unfit:
        reasons.setdefault(why, []).append(name)
    return list(reasons.items())


def _named(names: list[str]) -> str:
    """Fields by their labels: 'a', 'a and b', 'a, b and c'."""
    labels = [FIELD_INFO[name].label for name in names]
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"


def shared_camera(viewer) -> SharedCamera:
    """The one SharedCamera of this viewer."""
    if viewer not in _SHARED:
        _SHARED[viewer] = SharedCamera()
    return _SHARED[viewer]


class CameraFields(Container):
    """Camera set-up: profile choice and saving, a plain-words note on what the file did not
    state, and one field per camera value; `camera()` validates."""

    def __init__(self, viewer) -> None:
        self.shared, self.viewer = shared_camera(viewer), viewer
        self._quiet, self._stated, self._image, self._missing, self._image_name = False, {}, None, [], ""
        self.profile = ComboBox(label="profile", choices=self._profile_choices,
                                tooltip="A saved camera description; it overrides what the file states")
        self.profile_name = LineEdit(label="save as", tooltip="Name for a new profile of the values below")
        self.save_button = PushButton(text="Save profile",
                                      tooltip=f"Save the values below as a profile (in {config_dir() / 'cameras'})")
        self.note = StatusLabel()  # wraps instead of widening the dock
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
        self._typing: dict[str, str] = {}  # number box -> its text as typed, until the entry ends
        for name in _NUMBERS:
            box = self.fields[name].native
            box.lineEdit().textEdited.connect(lambda text, name=name: self._typing.__setitem__(name, text))
            box.editingFinished.connect(lambda name=name: self._entry_ended(name))
        # the type shown, chosen again, changes nothing, yet the user has now stated it
        self.fields["type"].native.activated.connect(lambda _: self._edited("type"))
        self.profile.changed.connect(self._apply_profile)
        viewer.layers.events.removed.connect(self._layer_closed)
        self.save_button.changed.connect(self.save_profile)
        self.shared.changed.connect(self._shared_changed)
        self._set_fields(merge_camera_values(self.shared.values)[0])
        if not self.shared.typed:
            self.note.value = DEFAULTS_NOTE

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

    def fill(self, stated: dict, frame_shape: tuple[int, int] | None = None) -> list[str]:
        """Fields from what the user typed (for this image if they did, else last), then what a
        file states, then the chosen profile (one merge rule, as in the CLI); calibration maps
        that do not fit frames of `frame_shape` are left out. The note says where the values the
        file did not state come from; returns their names."""
        self._stated = {k: v for k, v in stated.items() if v is not None}
        profile = self._profile_values()
        for_image = self.shared.per_image.get(self._image)
        typed = for_image if for_image is not None else self.shared.typed
        typed, unfit = _fitting_maps(typed, frame_shape)
        values, _ = merge_camera_values(typed, self._stated, profile)
        _, missing = merge_camera_values(self._stated, profile)
        self._set_fields(values)
        self.shared.set(self.values(), self)
        self._missing = missing
        here, entered = (self.shared.entered_for[self._image] if for_image is not None
                         else (set(), self.shared.entered()))
        notes = [self._heading(), self._missing_note(here, entered)]
        notes += [f"Left empty, not taken from your last entry: {_named(names)} ({why})."
                  for why, names in _by_reason(unfit)]
        in_use = self.values()
        carried = [name for name in MAP_FIELDS if for_image is None and self.shared.typed.get(name) and in_use[name]
                   and not self._stated.get(name) and not profile.get(name)]
        self._tell_last_entry(self._sources(here, entered)["from your last entry"] + carried)
        if carried:  # another camera's (or region's) maps of the same size would pass unnoticed
            maps = ", ".join(f"{FIELD_INFO[name].label} {Path(in_use[name]).name}" for name in carried)
            notes.append(f"In use from your last entry: {maps}. Clear them if this stack was taken with another "
                         "camera or camera region.")
        self.note.value = " ".join(note for note in notes if note)
        self._place()
        return missing

    def _heading(self) -> str:
        """Which stack's camera the fields show (panels beside each other may show others')."""
        return f"Camera of {self._image_name!r}." if self._image_name else ""

    def _sources(self, here: set[str], entered: set[str]) -> dict[str, list[str]]:
        """The fields the file did not state, by where their values come from: the user's entry for
        this image (`here`), their last entry (the rest of `entered`), else a default; a value a
        calibration map in use replaces is left out."""
        in_use = self.values()
        missing = [name for name in self._missing if not in_use.get(REPLACED_BY_MAP.get(name, ""))]
        return {"from your entry for this image": [name for name in missing if name in here],
                "from your last entry": [name for name in missing if name in entered - here],
                "defaults (not entered yet)": [name for name in missing if name not in entered]}

    def _missing_note(self, here: set[str], entered: set[str]) -> str:
        """What the file did not state, each field named once with where its value comes from
        (_sources; "" when none is left)."""
        said = "; ".join(f"{source}: {', '.join(FIELD_INFO[name].label for name in names)}"
                         for source, names in self._sources(here, entered).items() if names)
        return f"Not stated by the file, {said}. Check them." if said else ""

    def _tell_last_entry(self, names: list[str]) -> None:
        """A stack whose file does not state `names`, filled in from the user's last entry (for
        another stack, or in an earlier session): said in a notification, once per image, and the
        note brought into view (it sat in a section scrolled away, and a run took another stack's
        camera unnoticed)."""
        if not names or self._image is None or self._image in self.shared.told:
            return
        self.shared.told.add(self._image)
        stack = ("in an earlier session" if self.shared.typed_stack is None else
                 f"for {self.shared.typed_stack!r}" if self.shared.typed_stack else "while no image was chosen")
        show_warning(f"{self._image_name!r} does not state its {_named(names)}: in use is what you entered last "
                     f"({stack}); check under Camera")
        area = self.native.parentWidget()
        while area is not None and not isinstance(area, QScrollArea):
            area = area.parentWidget()
        if area is not None:
            area.ensureWidgetVisible(self.note.native)

    def camera_of(self, layer) -> Camera:
        """The camera of `layer`, the one a run on it uses: the fields filled from it first where
        they show another image's (this widget's other stack: the 3-D widget's beads). InputError,
        naming the fields, where a calibration map cannot be read or does not fit its frames."""
        if self._image is None or self._image != image_key(layer):
            self.fill_from(layer)
        _, unfit = _fitting_maps(self.values(), tuple(layer.data.shape[-2:]))
        if unfit:
            raise InputError("; ".join(f"{_named(names)}: {why}" for why, names in _by_reason(unfit))
                             + " (clear the field, or choose the map of the camera region this stack was taken with)")
        return self.camera()

    def fill_from(self, layer) -> list[str]:
        """`fill` with what an image layer's file stated (metadata["camera"]) and its frame shape."""
        if layer is None:  # no image: what the user typed last, or defaults that say so
            self._image, self._image_name = None, ""
            missing = self.fill({})
            self.note.value = "" if self.shared.typed else DEFAULTS_NOTE
            return missing
        self._image, self._image_name = image_key(layer), layer.name
        return self.fill(layer.metadata.get("camera", {}), tuple(layer.data.shape[-2:]))

    def _layer_closed(self, event) -> None:
        """The image whose camera the fields show closed (the widget's choice may go to none without a
        word): the fields and note no longer name it; the widget's next choice fills them again."""
        closed = event.value
        if (isinstance(closed, Image) and self._image is not None and image_key(closed) == self._image
                and all(image_key(layer) != self._image for layer in self.viewer.layers if isinstance(layer, Image))):
            self.fill_from(None)

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

    def _edited(self, name: str) -> None:
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
        values = self.values()
        field = "e_per_adu" if name == "adu_per_e" else name
        entered = {field: values[field]}
        if field == "type" and values["type"] == "sCMOS":  # what the type implies: EM gain 1
            entered["em_gain"] = values["em_gain"]
        self._share_entry(entered)
        self._say_entered()
        self._place()

    def _place(self) -> None:
        """The image whose camera the fields show in nm world coordinates at the pixel size shown, as soon as it is
        shown or entered, whichever panel it is entered in (the 3-D panel left a plain TIFF in pixels until its run);
        the view follows it where it is in view (a hidden bead stack's would fit the view to every stack)."""
        for layer in self.viewer.layers:
            if (isinstance(layer, Image) and self._image is not None and image_key(layer) == self._image
                    and place_image(layer, float(self.fields["pixel_size_nm"].value)) and layer.visible):
                fit_view(self.viewer, layer, or_all=True)

    def _say_entered(self) -> None:
        """The note after an entry for the image shown, in this panel or another: it speaks of what was
        typed (an earlier note on defaults or left-out maps is stale)."""
        here = self.shared.entered_for[-1 if self._image is None else self._image][0]
        self.note.value = " ".join(note for note in (self._heading(), self._missing_note(here, self.shared.entered()))
                                   if note)

    def _share_entry(self, entered: dict[str, Any]) -> None:
        """The user entered `entered` for the image shown: every panel shows it, and the last entry
        becomes their entries in use for this image: those made for it, and what it took from the
        entry before (fields its file does not state, maps that fit its frames)."""
        key, values = -1 if self._image is None else self._image, self.values()
        here = self.shared.entered_for.get(key, (set(), set()))[0] | set(entered)
        from_last = [name for name in self.shared.typed
                     if name not in here and name not in self._stated and values.get(name) is not None]
        set_up = {**{name: values[name] for name in from_last}, **{name: values.get(name) for name in here}}
        self.shared.set(values, self, typed_for=key, entered=entered, set_up=set_up, stack=self._image_name)

    def _entry_ended(self, name: str) -> None:
        """Return, or leaving a number box typed in: a value typed equal to the one shown is the
        user's entry too (the box reports no change: quantum efficiency 1, a default, could not be
        confirmed); one the box cannot take, or whose typing was undone, is not."""
        typed = self._typing.pop(name, None)
        box = self.fields[name].native
        if (typed is not None and box.validate(typed, 0)[0] == QValidator.State.Acceptable
                and box.textFromValue(box.valueFromText(typed)) == box.textFromValue(box.value())):
            self._edited(name)  # not where a key the box dropped put its value back ("16O": 16 typed, 160 kept)

    def _shared_changed(self, values: dict, sender, entered: bool) -> None:
        """Another panel's values, shown here where it shows the camera of the same image (each
        panel shows the camera of the stack its widget works on); an entry there is said in the note
        here too (the 3-D panel's named a pixel size typed in Predict "your last entry")."""
        if sender is not self and sender._image == self._image:
            self._set_fields(values)
            if entered:
                self._say_entered()

    def _show_for_type(self) -> None:
        """The fields that apply to the camera type; a value a per-pixel map replaces is greyed out,
        its tooltip saying so (a baseline typed beside an offset map would otherwise seem in use); a
        map's tooltip names its whole file (the field, narrow in a laptop's dock, shows its end)."""
        emccd = self.fields["type"].value == "EMCCD"
        for name in EMCCD_ONLY:
            self.fields[name].visible = emccd
        for name in MAP_FIELDS:
            self.fields[name].visible = not emccd
            chosen = self.fields[name].value
            self.fields[name].tooltip = FIELD_INFO[name].help + (f" In use: {chosen}" if chosen else "")
        for name, map_name in REPLACED_BY_MAP.items():
            replaced = not emccd and bool(self.fields[map_name].value)
            self.fields[name].enabled = not replaced
            self.fields[name].tooltip = FIELD_INFO[name].help + (
                f" Not used now: the {FIELD_INFO[map_name].label} gives each pixel's." if replaced else "")

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
        """The chosen profile over the file's values; choosing it counts as the user's entry."""
        try:
            self.fill(self._stated)
        except InputError as exc:
            show_error(str(exc))
            return
        self._share_entry(self._profile_values())

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
