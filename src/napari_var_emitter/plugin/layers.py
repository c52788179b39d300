"""Localisation tables <-> napari layers, placed over the image they belong to.

A layer made from an image shares its `scale` and `translate`; positions in nm become image
data coordinates with pixel (0, 0) covering [0, px) nm (docs/conventions.md), so a point at
x_nm lies at column x_nm / px - 0.5. Our reader gives images scale px and translate px/2, so
their world coordinates are nm exactly.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import numpy as np
import pandas as pd
from napari.layers import Image, Points
from napari.qt.threading import create_worker
from qtpy.QtCore import QTimer

from ..analysis.table_checks import has_z
from ..errors import InputError
from ..io.table import validate_table

MARKER_PX = 2.5  # marker diameter in camera pixels
# the frame column of a layer's features, as the user sees it beside napari's 0-based slider in the
# status bar: 1-based, as in CSV files and every widget (tables in memory are 0-based)
OUTPUT_IMAGES = ("scale_map", "render", "analysis_render")  # roles of images this plugin made: never camera frames
ANALYSIS_OUTPUTS = ("drift-corrected", "merged", "analysis_render")  # roles of what analysis widgets make of a table
PREVIEW_ROLE = "preview"  # the live preview's layer: the frame in view, beside (never instead of) a run's layers
FRAME_FEATURE = "frame (1-based)"
# the frame columns of a table (0-based inside) as a layer's features show them, 1-based as in the CSV
FRAME_FEATURES = {"frame": FRAME_FEATURE, "last_frame": "last frame (1-based)"}
TAG = "napari_var_emitter"  # metadata key of layers this plugin made: {"role": ..., "source": ...}
HIDDEN_KEY = "napari_var_emitter_hidden"  # metadata flag of a layer show_alone hid: shown again with its stack
# results of this many localisations or more go into a new layer built off the GUI thread
# (image_points); fewer are put into the last result's layer (refill)
BUILD_OFF_THREAD_FROM = 20_000


def image_placement(pixel_size_nm: float | None) -> dict:
    """scale/translate for a (T, Y, X) stack so world coordinates are nm (pixels when unknown)."""
    if pixel_size_nm is None:
        return {}
    return {"scale": (1.0, pixel_size_nm, pixel_size_nm), "translate": (0.0, pixel_size_nm / 2, pixel_size_nm / 2)}


def points_data(table: pd.DataFrame, pixel_size_nm: float) -> np.ndarray:
    """(N, 3) frame, row, column in image data coordinates."""
    return np.column_stack([table["frame"].to_numpy(float), table["y_nm"].to_numpy() / pixel_size_nm - 0.5,
                            table["x_nm"].to_numpy() / pixel_size_nm - 0.5]).reshape(-1, 3)


def points_kwargs(table: pd.DataFrame, name: str, scale, translate, size: float, role: str,
                  source: str = "") -> dict:
    """Points layer options (size in data units): every column a feature, border coloured by z
    (3-D tables, turbo over the 1st-99th percentile), else by probability when present."""
    return {"name": name, "features": layer_features(table), "scale": scale, "translate": translate,
            "size": size, "symbol": "ring", "face_color": "transparent",
            "border_width": 0.15, "border_width_is_relative": True, "out_of_slice_display": False,
            "metadata": {TAG: {"role": role, "source": source}}, **colouring(table)}


def layer_features(table: pd.DataFrame) -> pd.DataFrame:
    """A table as a Points layer's features: every column, the frames 1-based (FRAME_FEATURES)."""
    features = table.reset_index(drop=True).rename(columns=FRAME_FEATURES)
    for shown in FRAME_FEATURES.values():
        if shown in features:
            features[shown] = features[shown] + 1
    return features


def colouring(table: pd.DataFrame) -> dict:
    """Border colour options of a table's points: by z (3-D tables, turbo over the 1st-99th
    percentile), else by probability when present, else lime."""
    if has_z(table):
        return {"border_color": "z_nm", "border_colormap": "turbo", "border_contrast_limits": z_colour_limits(table)}
    if "probability" in table:
        return {"border_color": "probability", "border_colormap": "plasma", "border_contrast_limits": (0.0, 1.0)}
    return {"border_color": "lime"}


def output_options(image, single: bool, name: str, role: str) -> dict:
    """points_kwargs' options for a layer of this plugin's results over `image` (named
    "<image> <name>", in its placement, markers MARKER_PX across)."""
    dims = 2 if single else 3
    return {"name": f"{image.name} {name}", "scale": tuple(image.scale[-dims:]),
            "translate": tuple(image.translate[-dims:]), "size": MARKER_PX, "role": role, "source": image.name}


def image_points(table: pd.DataFrame, pixel_size_nm: float, single: bool, **options) -> Points:
    """(any thread) A Points layer of a table over its image (a single frame: y, x only) with
    points_kwargs' `options`, its extent computed. napari's constructor does no per-point Python
    work, unlike its data setter, so a whole movie's table can be built off the GUI thread."""
    data = points_data(table, pixel_size_nm)
    points = Points(data[:, 1:] if single else data, **points_kwargs(table, **options))
    _ = points.extent  # cached: napari asks for it on insertion
    return points


def refill(points: Points, table: pd.DataFrame, pixel_size_nm: float) -> None:
    """Put a table's localisations into an existing Points layer (its placement kept), coloured
    as points_kwargs colours them. napari's data setter costs ~5 µs a point on the GUI thread:
    for tables under BUILD_OFF_THREAD_FROM."""
    if not len(table):
        if len(points.data):
            points.data = np.zeros((0, points.ndim))
        return
    data = points_data(table, pixel_size_nm)
    points.data = data[:, 1:] if points.ndim == 2 else data
    points.features = layer_features(table)
    for key, value in colouring(table).items():
        setattr(points, key, value)


def refillable(layer, dims: int) -> bool:
    """Whether a result layer can take the next result (refill): the same dimensionality, and
    fewer than BUILD_OFF_THREAD_FROM points (emptying more would freeze the viewer longer than
    keeping it: retire)."""
    return layer.ndim == dims and len(layer.data) < BUILD_OFF_THREAD_FROM


def insert_built(viewer, build: Callable[[], Points], make_room: Callable[[], int],
                 done: Callable[[Points], None], failed: Callable[[Exception], None]):
    """Run `build()` in a worker thread; then, on the GUI thread, `make_room()` (which returns
    the index for the new layer) and insert the layer there; then `done(layer)`, or `failed(exc)`
    if the build raised. Returns the started worker."""

    def insert(points: Points) -> None:
        viewer.layers.insert(make_room(), points)
        done(points)

    worker = create_worker(build, _start_thread=False, _connect={"returned": insert, "errored": failed})
    worker.start()
    return worker


RETIRED = "earlier "  # the role of a layer retire() kept begins with this


def retire(layer) -> None:
    """Keep an earlier run's result layer for the user to delete, out of the way: hidden, named
    "(earlier run)", no longer a widget's output. (napari's removal of a layer costs a full
    garbage collection, ~0.25 s of frozen viewer with napari and torch loaded; this costs none.)"""
    layer.visible = False
    layer.name = f"{layer.name} (earlier run)"
    layer.metadata[TAG]["role"] = f"{RETIRED}{layer.metadata[TAG]['role']}"


_CLOSED_STACKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # viewer -> names of stacks closed


def _closed_stacks(viewer) -> set[str]:
    """The names of the images (not made by this plugin) closed in `viewer` since show_alone first
    ran there and not opened again."""
    if viewer not in _CLOSED_STACKS:
        closed = _CLOSED_STACKS[viewer] = set()

        def removed(event) -> None:
            if isinstance(event.value, Image) and TAG not in event.value.metadata:
                closed.add(event.value.name)

        viewer.layers.events.removed.connect(removed, position="first")  # before the widgets choose again
        viewer.layers.events.inserted.connect(lambda event: closed.discard(event.value.name))
    return _CLOSED_STACKS[viewer]


def show_alone(viewer, image, stacks) -> list[str]:
    """Show `image` with the layers of it that an earlier call hid (not those the user hid), and
    hide the other camera stacks among `stacks` and the layers this plugin made of them or of a
    stack closed since (its detections stayed over the stack chosen after it): napari
    puts every dataset in one world (nm), so a dataset just opened or chosen would lie over the
    last one and under its detections; a hidden layer selected gives the selection to `image`.
    Returns the names of the layers hidden."""
    closed = _closed_stacks(viewer)
    image.visible = True
    for layer in viewer.layers:
        own = layer is image or layer.metadata.get(TAG, {}).get("source") == image.name
        if own and layer.metadata.get(HIDDEN_KEY):
            layer.visible = True
            del layer.metadata[HIDDEN_KEY]
    others = {stack.name for stack in stacks if stack is not image}
    made_of_others = (others | closed) - {image.name}
    hidden = [layer for layer in viewer.layers if layer.visible
              and (layer.name in others or layer.metadata.get(TAG, {}).get("source") in made_of_others)]
    for layer in hidden:
        layer.visible = False
        layer.metadata[HIDDEN_KEY] = True
    if viewer.layers.selection.active in hidden:  # its controls and name in the status bar were of a hidden layer
        viewer.layers.selection.active = image
    return [layer.name for layer in hidden]


def view_alone(viewer, image, stacks) -> list[str]:
    """show_alone, then, once napari has taken it in (its dims follow the insertion), `image` under
    what was made of it, the view on it alone (fit_view) and the slider on one of its frames;
    returns the names of the layers hidden (none: the view is left, but for the slider)."""
    hidden = show_alone(viewer, image, stacks)

    def view() -> None:
        _below_what_was_made_of_it(viewer, image)
        if hidden:
            fit_view(viewer, image)
        frame_into_view(viewer, image)

    QTimer.singleShot(0, view)
    return hidden


def _below_what_was_made_of_it(viewer, image) -> None:
    """A stack opened again goes under the layers made of it before it was closed (napari puts a
    layer opened on top, where it hid its detections)."""
    if image not in viewer.layers:
        return
    made = [at for at, layer in enumerate(viewer.layers) if layer.metadata.get(TAG, {}).get("source") == image.name]
    at = viewer.layers.index(image)
    if made and at > made[0]:
        viewer.layers.move(at, made[0])


def frame_into_view(viewer, layer, span: tuple[int, int] | None = None) -> None:
    """Move the frame slider onto `layer`'s last frame where it stands beyond it (a longer stack
    was in view: napari's slider spans the hidden layers too, and the canvas would stay empty);
    with `span` (first, stop) 0-based frames of a run, onto its first frame where it stands outside
    them (the run's localisations would not be in view)."""
    if layer not in viewer.layers or layer.ndim < 3 or layer.ndim > viewer.dims.ndim:
        return
    point = np.asarray(viewer.dims.point[-layer.ndim:], float)
    data = np.asarray(layer.world_to_data(point), float)
    first, stop = span or (0, layer.data.shape[-3])
    if first <= round(data[-3]) < stop:
        return
    data[-3] = frame_in_view(viewer, layer) if span is None else first
    viewer.dims.set_point(viewer.dims.ndim - 3, float(layer.data_to_world(data)[-3]))


def fit_view(viewer, layer, or_all: bool = False) -> None:
    """The view on this layer alone, not on every layer (napari's reset: with another dataset
    hidden beside it, a small stack would sit in a corner of the other's extent). napari's fit to
    some layers fails on one with fewer dimensions than the viewer: then the view is fitted to
    every layer if `or_all`, else left as is."""
    if layer in viewer.layers and layer.visible and layer.ndim == viewer.dims.ndim:
        viewer.fit_to_view(layers=[layer])
    elif or_all:
        viewer.reset_view()


def remove_layers(viewer, layers: list) -> None:
    """Remove these layers with one garbage collection: napari runs a full one after each
    removal (~0.25 s of frozen viewer with napari and torch loaded), once per batch."""
    if layers:
        with viewer.layers.batched_update():
            for layer in layers:
                viewer.layers.remove(layer)


def outputs(viewer, roles, source: str | None = None) -> list:
    """The layers this plugin made in these roles (from the image named `source`; None: any)."""
    return [lay for lay in viewer.layers if lay.metadata.get(TAG, {}).get("role") in roles
            and source in (None, lay.metadata[TAG].get("source"))]


def remove_outputs(viewer, source: str, roles) -> None:
    """Remove the layers this plugin made from `source` in these roles (never anything else)."""
    remove_layers(viewer, outputs(viewer, roles, source))


def z_colour_limits(table: pd.DataFrame) -> tuple[float, float]:
    """z (nm) at the ends of the z colour map: the 1st and 99th percentile (at least 1 nm apart)."""
    low, high = np.percentile(table["z_nm"], [1, 99])
    return float(low), float(max(high, low + 1))


def nm_points_layer(table: pd.DataFrame, name: str, role: str, size_nm: float, source: str = "") -> tuple:
    """LayerData of a table as Points in nm world coordinates (frame, y, x)."""
    data = table[["frame", "y_nm", "x_nm"]].to_numpy(float)
    return (data, points_kwargs(table, name, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), size_nm, role, source), "points")


def contrast_limits(frames) -> tuple[float, float]:
    """1st and 99.9th percentile of the counts (at least one count apart)."""
    low, high = np.percentile(np.asarray(frames), [1, 99.9])
    return float(low), float(max(high, low + 1))


def opened_beside(opened, chosen) -> bool:
    """Whether a layer just opened is a single image of the chosen stack's frame size (a
    calibration map, an average) opened beside it, not a stack to work on instead."""
    return (chosen is not None and chosen is not opened and chosen.ndim >= 3 and opened.ndim == 2
            and tuple(opened.data.shape) == tuple(chosen.data.shape[-2:]))


def layer_choices(viewer, kind, inputs_only: bool = False):
    """ComboBox choices: the viewer's layers of this type but the live preview's (one frame, redone
    at every change); with inputs_only, not the maps and renders this plugin made either (they
    are outputs, never camera frames)."""
    def choices(_widget=None):
        return [layer for layer in viewer.layers if isinstance(layer, kind)
                and layer.metadata.get(TAG, {}).get("role") != PREVIEW_ROLE
                and not (inputs_only and layer.metadata.get(TAG, {}).get("role") in OUTPUT_IMAGES)]
    return choices


def stack_name(layer) -> str:
    """The camera stack a layer belongs to: the source of a layer this plugin made (localisations,
    maps; what was made of those inherits it), else the layer's own name."""
    return layer.metadata.get(TAG, {}).get("source") or layer.name


class FollowShown:
    """Keeps a nullable layer ComboBox on a layer in view: where the layer it names is hidden
    (another dataset shown alone, layers.show_alone) or a layer is added, once napari and the
    other widgets are done (show_alone hides a dataset's layers one by one), the visible layer it
    offers that was chosen most recently, else the topmost visible one, else none. With
    `within_dataset`, a hidden layer stays chosen while a layer of its dataset (stack_name) is in
    view (not one retired, "(earlier run)"): the Filter stays on the detections that Drift or
    Merge hid under their layer.
    Idle once `alive()` is False (its dock closed)."""

    def __init__(self, viewer, combo, alive: Callable[[], bool], within_dataset: bool = False) -> None:
        self.combo, self.alive, self.watched, self.viewer = combo, alive, None, viewer
        self.within_dataset = within_dataset
        self.chosen: list = []  # layers the combo was on, the latest last (a layer removed is forgotten)
        viewer.layers.events.inserted.connect(self._soon)
        viewer.layers.events.removed.connect(self._removed)
        if within_dataset:  # any layer hidden may be the last of the chosen one's dataset in view
            for layer in viewer.layers:
                layer.events.visible.connect(self._soon)
            viewer.layers.events.inserted.connect(self._watch_inserted)
        combo.changed.connect(self._watch)
        self._watch(combo.value)

    def _stop(self) -> None:
        """Lets go of the viewer's and its layers' events, and of its combo's (the dock is closed)."""
        self.combo.changed.disconnect(self._watch)
        self._watch(None)
        events = self.viewer.layers.events
        for emitter, callback in ((events.inserted, self._soon), (events.removed, self._removed),
                                  (events.inserted, self._watch_inserted)):
            emitter.disconnect(callback)
        if self.within_dataset:
            for layer in self.viewer.layers:
                layer.events.visible.disconnect(self._soon)

    def _removed(self, event) -> None:
        self._forget(event.value)

    def _forget(self, layer) -> None:
        self.chosen = [kept for kept in self.chosen if kept is not layer]

    def _watch_inserted(self, event) -> None:
        event.value.events.visible.connect(self._soon)

    def _watch(self, layer) -> None:
        if self.watched is not None and not self.within_dataset:
            self.watched.events.visible.disconnect(self._soon)
        if layer is not None:
            if not self.within_dataset:  # (every layer's is watched then)
                layer.events.visible.connect(self._soon)
            self._forget(layer)
            self.chosen.append(layer)
        self.watched = layer

    def _soon(self, *_) -> None:
        QTimer.singleShot(0, self.follow)

    def follow(self) -> None:
        if not self.alive():
            self._stop()
            return
        chosen = self.combo.value
        retired = chosen is not None and chosen.metadata.get(TAG, {}).get("role", "").startswith(RETIRED)
        if chosen is not None and (chosen.visible or self.within_dataset and not retired and any(
                layer.visible and stack_name(layer) == stack_name(chosen) for layer in self.viewer.layers)):
            return
        self.combo.reset_choices()
        shown = [layer for layer in self.combo.choices if layer is not None and layer.visible]
        before = [layer for layer in self.chosen if layer in shown]
        self.combo.value = before[-1] if before else (shown[-1] if shown else None)


def pick_shown(combo) -> None:
    """Set a layer ComboBox to the topmost visible layer it offers (napari lists the lowest first):
    a widget opened beside the dataset in view works on that one."""
    shown = [layer for layer in combo.choices if layer is not None and layer.visible]
    if shown:
        combo.value = shown[-1]


def slider_frame(viewer, layer) -> int:
    """The frame (0-based) of a (T, Y, X) image layer the frame slider stands on, within the
    stack or not (napari's slider spans every layer, hidden ones too); 0 for a 2D image."""
    if layer.ndim < 3:
        return 0
    return int(round(layer.world_to_data(viewer.dims.point[-layer.ndim:])[-3]))


def frame_in_view(viewer, layer) -> int:
    """The frame (0-based, within the stack) of a (T, Y, X) image layer that the viewer shows; 0 for a 2D image."""
    return min(max(slider_frame(viewer, layer), 0), layer.data.shape[-3] - 1) if layer.ndim >= 3 else 0


def place_image(layer, pixel_size_nm: float) -> bool:
    """Give an image layer scale = pixel size and translate = half a pixel on its last two axes,
    so world coordinates are nm (as our reader does); returns whether it changed."""
    scale, translate = np.array(layer.scale, float), np.array(layer.translate, float)
    want_scale, want_translate = scale.copy(), translate.copy()
    placement = image_placement(pixel_size_nm)
    want_scale[-2:], want_translate[-2:] = placement["scale"][-2:], placement["translate"][-2:]
    if np.allclose(scale, want_scale) and np.allclose(translate, want_translate):
        return False
    layer.scale, layer.translate = want_scale, want_translate
    return True


def map_placement(scale, translate, stride_px: int) -> tuple[tuple, tuple]:
    """scale/translate of a map whose cell covers stride x stride pixels of an image with this
    scale/translate ((T, Y, X) or (Y, X)): cell (0, 0) covers pixels 0..stride-1, so its centre
    lies at (stride - 1) / 2."""
    scale, translate = np.array(scale, float), np.array(translate, float)
    translate[-2:] += scale[-2:] * (stride_px - 1) / 2
    scale[-2:] *= stride_px
    return tuple(scale), tuple(translate)


def stack_of(layer) -> tuple[object, bool]:
    """The (T, Y, X) frames of an image layer and whether it was a single 2D frame; anything
    else is an InputError that says what to do."""
    import napari

    if not isinstance(layer, napari.layers.Image):
        raise InputError("pick an image layer (a camera stack)")
    if layer.rgb:
        raise InputError(f"{layer.name!r} is an RGB image: SMLM needs single-channel camera frames")
    if layer.multiscale:
        raise InputError(f"{layer.name!r} is multiscale: open the full-resolution stack")
    data = layer.data
    if 0 in data.shape:
        raise InputError(f"{layer.name!r} is empty (shape {data.shape})")
    if data.ndim == 2:
        return data[None], True
    extra = [n for n in data.shape[:-3] if n != 1]
    if data.ndim < 2 or extra:
        raise InputError(f"{layer.name!r} has shape {data.shape}: give a (frames, y, x) stack; split channels, "
                         "z or positions into separate layers first")
    return data.reshape(data.shape[-3:]), False


def table_from_points(data: np.ndarray, features: pd.DataFrame | None, scale, translate,
                      shown=None) -> pd.DataFrame:
    """A localisation table from a Points layer: its features when they hold x_nm/y_nm and a
    frame (FRAME_FEATURE: layers made by this plugin or read from CSV / emitters.h5; or a 0-based
    "frame"), else world coordinates (frame, y, x) taken as nm; only the points `shown` (the
    layer's mask: every step after the Filter works on the localisations it keeps) where given."""
    table = _table_of_points(data, features, scale, translate)
    return table if shown is None else table[np.asarray(shown, bool)].reset_index(drop=True)


def _table_of_points(data: np.ndarray, features: pd.DataFrame | None, scale, translate) -> pd.DataFrame:
    """table_from_points of every point."""
    columns = set(features.columns) if features is not None else set()
    if {"x_nm", "y_nm"} <= columns and columns & {FRAME_FEATURE, "frame"}:
        table = features.reset_index(drop=True)
        for column, shown in FRAME_FEATURES.items():
            if shown in columns:
                table = table.drop(columns=column, errors="ignore").rename(columns={shown: column})
                table[column] = table[column] - 1
        return validate_table(table, "points layer")
    data = np.asarray(data, float)
    if data.ndim != 2 or data.shape[1] != 3:
        raise ValueError(f"points need (frame, y, x) coordinates, got shape {data.shape}")
    world = data * np.asarray(scale, float) + np.asarray(translate, float)
    table = pd.DataFrame({"frame": np.rint(world[:, 0]).astype(int), "x_nm": world[:, 2], "y_nm": world[:, 1]})
    return validate_table(table, "points layer")


def table_from_layer(layer) -> pd.DataFrame:
    """`table_from_points` of the points a napari Points layer shows (analysis, exports, the 3-D
    view, fine-tuning labels)."""
    return table_from_points(layer.data, layer.features, layer.scale, layer.translate, layer.shown)


def clear_file(file_edit) -> None:
    """Empty a magicgui FileEdit, as it is at first (its value "" would show the working folder):
    another dataset's file is not this one's to replace."""
    file_edit.line_edit.value = ""


def shown_note(layer) -> str:
    """Nothing when a Points layer shows all its points, else " (the n of N shown: the Filter hides the rest)"."""
    shown, every = int(np.count_nonzero(layer.shown)), len(layer.data)
    return "" if shown == every else f" (the {shown:,} of {every:,} shown: the Filter hides the rest)"
