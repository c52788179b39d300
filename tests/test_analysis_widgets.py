"""The analysis widgets in a real napari viewer (Xvfb), on simulated tables opened as a user
would (our CSV through the plugin's reader)."""

import re

import numpy as np
from matplotlib.colors import to_rgba
import pandas as pd
import pytest
import tifffile
from napari.layers import Image, Points

from napari_var_emitter.io.localizations import read_localizations, write_localizations
from napari_var_emitter.plugin.analysis_widgets import (DriftWidget, MergeWidget, RenderWidget, ResolutionWidget,
                                                        StatsWidget)
from napari_var_emitter.plugin.layers import FRAME_FEATURE, TAG, layer_choices, nm_points_layer
from napari_var_emitter.plugin.theme import theme_colours
from napari_var_emitter.simulate.config import SimulationConfig, StructureConfig
from napari_var_emitter.simulate.localizations import drift_trajectory, simulate_localizations

PLUGIN = "napari-var-emitter"


@pytest.fixture(scope="module")
def drifted(tmp_path_factory):
    """A 3,000-frame filament table with 200 nm of drift, as CSV; and the true drift."""
    config = SimulationConfig(frame_size=(64, 64), n_frames=3000, density_per_um2=0.5,
                              structure=StructureConfig(kind="filaments"))
    rng = np.random.default_rng(130)
    true_T2 = drift_trajectory(config.n_frames, rng, total_nm=200.0)
    locs, _ = simulate_localizations(config, rng, true_T2)
    path = tmp_path_factory.mktemp("widgets") / "locs.csv"
    write_localizations(path, locs)
    return path, true_T2


@pytest.fixture
def points(viewer, drifted):
    (layer,) = viewer.open(str(drifted[0]), plugin=PLUGIN)
    assert isinstance(layer, Points)
    return layer


def _run(qtbot, widget, timeout=60_000):
    widget.start()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)


def test_drift_widget_adds_a_corrected_layer_and_saves(qtbot, viewer, points, drifted, tmp_path):
    widget = DriftWidget(viewer)
    assert widget.layer.value is points and widget.fiducials.native.isHidden()
    _run(qtbot, widget)
    corrected = viewer.layers[f"{points.name} drift-corrected"]
    assert corrected.visible and not points.visible  # not every ring drawn twice
    assert re.fullmatch(r"drift over 3,000 frames: x [\d.]+ nm, y [\d.]+ nm \(RCC: \d+ segments of \d+ frames, "
                        rf"agreeing to ±[\d.]+ nm\); corrected layer added; {points.name} hidden \(tick its eye to "
                        r"compare\)", widget.status.value), widget.status.value
    estimated = widget.result[0].drift_nm_T2
    residual = estimated - drifted[1]
    assert np.sqrt(np.mean(np.sum((residual - residual.mean(0)) ** 2, axis=1))) < 5.0
    shift = corrected.features[["x_nm", "y_nm"]].to_numpy() - points.features[["x_nm", "y_nm"]].to_numpy()
    np.testing.assert_allclose(-shift, estimated[points.features[FRAME_FEATURE] - 1], atol=1e-6)
    assert widget.figure.axes and widget.figure.axes[0].lines  # the curve is drawn
    widget.csv_path.value = tmp_path / "dc.csv"
    widget.export()
    assert len(read_localizations(tmp_path / "dc.csv")) == len(points.data)
    assert pd.read_csv(tmp_path / "dc.drift.csv").shape == (3000, 3)


def test_drift_widget_from_fiducials_and_a_clear_error(qtbot, viewer, points, errors):
    widget = DriftWidget(viewer)
    widget.method.value = "fiducials"
    assert not widget.fiducials.native.isHidden() and widget.segment_frames.native.isHidden()
    _run(qtbot, widget)  # no fiducial layer picked yet
    assert errors and "mark the fiducials" in errors[-1]
    marks = viewer.add_points(np.array([[0.0, 1e6, 1e6]]), name="marks")  # far from every localisation
    widget.fiducials.value = marks
    _run(qtbot, widget)
    assert "fewer than 2 localisations" in errors[-1]
    assert f"{points.name} drift-corrected" not in viewer.layers


def test_merge_widget(qtbot, viewer, points):
    widget = MergeWidget(viewer)
    _run(qtbot, widget)
    merged = viewer.layers[f"{points.name} merged"]
    assert 0 < len(merged.data) < len(points.data)
    assert merged.features["n_merged"].sum() == len(points.data)
    assert "blinks" in widget.status.value and merged.visible and not points.visible


def test_resolution_widget_plots_in_the_theme(qtbot, viewer, points):
    widget = ResolutionWidget(viewer)
    empty = widget.figure.get_facecolor()  # before any result: the theme's colour, not matplotlib's white
    assert empty == to_rgba(theme_colours(viewer).background) and empty != to_rgba("white")
    _run(qtbot, widget)
    assert "NeNA" in widget.status.value and "FRC" in widget.status.value
    nena_axes, frc_axes = widget.figure.axes
    assert frc_axes.lines and nena_axes.patches
    background = widget.figure.get_facecolor()
    viewer.theme = "light" if viewer.theme == "dark" else "dark"
    assert widget.figure.get_facecolor() != background  # redrawn in the new theme


def test_render_widget_colours_by_frame_and_exports(qtbot, viewer, points, tmp_path):
    widget = RenderWidget(viewer)
    widget.pixel_nm.value = 20.0
    widget.colour_by.value = "frame"
    widget.last_frame.value = 1500
    _run(qtbot, widget)
    image = viewer.layers[f"{points.name} render (20 nm/px)"]
    assert isinstance(image, Image) and image.rgb and image.data.shape[-1] == 3
    assert image not in layer_choices(viewer, Image, inputs_only=True)()  # an output, never camera frames ...
    assert image.metadata[TAG]["role"] != "render"  # ... and not Predict's render, which its next one replaces
    np.testing.assert_allclose(image.data_to_world((-0.5, -0.5)), (0, 0), atol=1e-9)
    widget.tiff_path.value = tmp_path / "render.tif"
    widget.export()
    with tifffile.TiffFile(tmp_path / "render.tif") as tif:
        numerator, denominator = tif.pages[0].tags["XResolution"].value
        assert denominator / numerator * 1000 == pytest.approx(20.0) and tif.pages[0].shape[-1] == 3


def test_render_widget_covers_the_stacks_field_where_the_stack_is_open(qtbot, viewer):
    """Localisations in one corner of a 96 x 128 px stack of 100 nm pixels: the render covers the
    stack's 9.6 x 12.8 µm, as Predict's render does (it covered the localisations' corner alone)."""
    viewer.add_image(np.zeros((2, 96, 128), np.float32), name="the stack", scale=(1, 100, 100))
    table = pd.DataFrame({"frame": [1, 2], "x_nm": [500.0, 900.0], "y_nm": [700.0, 300.0],
                          "photons": [1000.0, 1000.0], "uncertainty_nm": [10.0, 10.0]})
    data, kwargs, _ = nm_points_layer(table, "the stack detections", "detections", 50.0, source="the stack")
    viewer.add_points(data, **kwargs)
    widget = RenderWidget(viewer)
    widget.pixel_nm.value = 50.0
    _run(qtbot, widget)
    assert viewer.layers["the stack detections render (50 nm/px)"].data.shape == (192, 256)


def test_stats_widget(qtbot, viewer, points):
    widget = StatsWidget(viewer)
    _run(qtbot, widget)
    assert "in frames 1-3,000" in widget.status.value and "median" in widget.status.value
    assert len(widget.figure.axes) == 3
    widget.canvas.draw()
    assert all(axes.get_window_extent().height >= 80 for axes in widget.figure.axes)  # readable, in pixels


def test_widgets_open_from_the_plugin_menu(viewer):
    for name in ("Drift correction", "Merge blinks", "Precision and resolution", "Render super-resolution",
                 "Localisation statistics"):
        dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
        assert widget.layer is not None


def test_an_empty_layer_gets_a_clear_error(qtbot, viewer, errors):
    viewer.add_points(np.empty((0, 3)), name="nothing")
    widget = StatsWidget(viewer)
    _run(qtbot, widget)
    assert errors and "needs at least 1" in errors[-1]


def test_the_steps_after_the_filter_take_the_localisations_it_keeps(qtbot, viewer, points, tmp_path):
    """Points the Filter hides are left out of every analysis and export, and the status says so
    (trying the plugin: drift, merge, renders and the export used all 1,570 of 1,294 kept)."""
    from napari_var_emitter.io.localizations_csv import read_localizations_csv
    from napari_var_emitter.plugin.writers import export_csv

    keep = points.features["photons"].to_numpy() > np.median(points.features["photons"])
    points.shown = keep  # as the Filter does
    stats = StatsWidget(viewer)
    _run(qtbot, stats)
    n_kept, n_all = int(keep.sum()), len(keep)
    assert f"{n_kept:,} localisations in frames" in stats.status.value
    assert f"(the {n_kept:,} of {n_all:,} shown: the Filter hides the rest)" in stats.status.value
    merge = MergeWidget(viewer)
    _run(qtbot, merge)
    merged = viewer.layers[f"{points.name} merged"]
    assert merged.features["n_merged"].sum() == n_kept
    first, last = merged.features[FRAME_FEATURE], merged.features["last frame (1-based)"]  # both 1-based
    assert (last >= first).all() and first.min() >= 1
    export_csv(points, tmp_path / "kept.csv", "Predict", stats.status)
    assert stats.status.value.endswith(f"\nwrote {n_kept:,} localisations to {tmp_path / 'kept.csv'} (the "
                                       f"{n_kept:,} of {n_all:,} shown: the Filter hides the rest)")
    assert len(read_localizations_csv(tmp_path / "kept.csv")) == n_kept
    points.save(str(tmp_path / "saved.csv"), plugin=PLUGIN)  # napari's File > Save Selected Layers
    assert len(read_localizations_csv(tmp_path / "saved.csv")) == n_kept


def test_the_filter_stays_on_the_localisations_a_step_hid_under_its_own(qtbot, viewer, points):
    """Trying the plugin, Merge hid the filtered detections under its layer and the Filter moved to
    that layer: the detections of the next Predict run came unfiltered. The Filter stays with them
    while their dataset is in view; the analysis widgets go on to the new layer."""
    from napari_var_emitter.plugin.filter_widget import FilterWidget

    filtering, merge = FilterWidget(viewer), MergeWidget(viewer)
    for widget in (filtering, merge):
        viewer.window.add_dock_widget(widget)  # docked: FollowShown idles for a widget whose dock is closed
    assert filtering.layer.value is points and merge.layer.value is points
    threshold = float(np.median(points.features["photons"]))
    filtering.ranges["photons"][0].value = threshold
    kept = points.shown.copy()
    assert 0 < kept.sum() < len(kept)
    _run(qtbot, merge)
    merged = viewer.layers[f"{points.name} merged"]
    qtbot.wait(50)  # FollowShown acts once napari is done
    assert not points.visible and merged.visible
    assert filtering.layer.value is points and (points.shown == kept).all()
    assert filtering.ranges["photons"][0].value == pytest.approx(threshold, abs=1e-3)
    assert filtering.status.value == f"kept {kept.sum():,} of {len(kept):,} localisations ({points.name} is hidden: " \
        "tick its eye to see them)"  # filtering it changes nothing in view
    points.visible = True
    assert filtering.status.value == f"kept {kept.sum():,} of {len(kept):,} localisations"
    points.visible = False
    assert merge.layer.value is merged
    merged.visible = False  # nothing of the dataset in view: the Filter moves on
    qtbot.wait(50)
    assert filtering.layer.value is None


def test_the_analysis_widgets_follow_the_dataset_in_view(qtbot, viewer, tmp_path):
    """A dataset shown alone (Predict's show_alone): each analysis widget moves to its
    localisations, its last result, status and export file cleared (trying the plugin: Stats kept
    the first dataset's summary and Drift its file name, and an export replaced that file); what a
    step made of a dataset's localisations is hidden and shown with that dataset."""
    from napari_var_emitter.plugin.layers import layer_features, show_alone

    def dataset(name: str, seed: int):
        image = viewer.add_image(np.zeros((50, 32, 32), np.uint16), name=name)
        table = pd.DataFrame({"frame": np.repeat(np.arange(50), 60), "photons": 1000.0, "uncertainty_nm": 10.0})
        rng = np.random.default_rng(seed)
        sites_nm = rng.uniform(0, 3200, (200, 2))  # molecules seen again and again: what RCC correlates
        table[["x_nm", "y_nm"]] = sites_nm[rng.integers(0, 200, len(table))] + rng.normal(0, 10, (len(table), 2))
        points = viewer.add_points(table[["frame", "y_nm", "x_nm"]].to_numpy(float), name=f"{name} detections",
                                   features=layer_features(table), metadata={TAG: {"role": "detections",
                                                                                   "source": name}})
        return image, points

    first, first_points = dataset("first", 1)
    widget = DriftWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.segment_frames.value = 10
    assert widget.layer.value is first_points
    _run(qtbot, widget)
    assert "drift over 50 frames" in widget.status.value, widget.status.value
    corrected = viewer.layers["first detections drift-corrected"]
    assert corrected.metadata[TAG]["source"] == "first" and widget.result is not None
    widget.csv_path.value = tmp_path / "first_dc.csv"
    second, second_points = dataset("second", 2)
    show_alone(viewer, second, [first, second])  # as the Predict widget does with a stack just opened
    qtbot.waitUntil(lambda: widget.layer.value is second_points)
    assert not corrected.visible and not first_points.visible
    assert widget.result is None and widget.status.value == "" and not str(widget.csv_path.value).endswith(".csv")
    widget.export()  # nothing of the first dataset is written for the second
    assert not (tmp_path / "first_dc.csv").exists()
    assert str(widget.csv_path.line_edit.value) == ""  # empty, as at first (not the working folder)
    viewer.layers.selection.active = second_points
    show_alone(viewer, first, [first, second])  # back: its corrected localisations with it, and the widget on
    assert corrected.visible and not first_points.visible  # as left: the corrected over the hidden original
    assert viewer.layers.selection.active is first  # not the hidden layer selected before (its controls shown)
    qtbot.waitUntil(lambda: widget.layer.value is corrected)  # the localisations in view
    show_alone(viewer, third := viewer.add_image(np.zeros((5, 8, 8), np.uint16), name="third"), [first, second, third])
    qtbot.waitUntil(lambda: widget.layer.value is None)  # a stack with no localisations yet: nothing of another's


def test_a_merged_layer_draws_its_markers_as_large_as_the_layer_analysed(qtbot, viewer):
    """Predict's detections of 160 nm pixels have markers 2.5 px across (400 nm); the merged (and
    drift-corrected) layers drew theirs 250 nm across, whatever the pixel."""
    from napari_var_emitter.plugin.layers import layer_features

    table = pd.DataFrame({"frame": np.repeat(np.arange(1, 11), 5), "photons": 1000.0, "uncertainty_nm": 10.0})
    table[["x_nm", "y_nm"]] = np.random.default_rng(3).uniform(0, 5000, (len(table), 2))
    data = table[["frame", "y_nm", "x_nm"]].to_numpy(float) / [1.0, 160.0, 160.0]
    points = viewer.add_points(data, name="stack detections", scale=(1.0, 160.0, 160.0), size=2.5,
                               features=layer_features(table))
    merge = MergeWidget(viewer)
    merge.layer.value = points
    _run(qtbot, merge)
    merged = viewer.layers["stack detections merged"]
    assert np.median(merged.size) * merged.scale[-1] == pytest.approx(2.5 * 160.0)
