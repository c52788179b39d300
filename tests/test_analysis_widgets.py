"""The analysis widgets in a real napari viewer (Xvfb), on simulated tables opened as a user
would (our CSV through the plugin's reader)."""

import numpy as np
from matplotlib.colors import to_rgba
import pandas as pd
import pytest
import tifffile
from napari.layers import Image, Points

from napari_var_emitter.io.localizations import read_localizations, write_localizations
from napari_var_emitter.plugin.analysis_widgets import (DriftWidget, MergeWidget, RenderWidget, ResolutionWidget,
                                                        StatsWidget)
from napari_var_emitter.plugin.layers import FRAME_FEATURE
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
    assert "blinks" in widget.status.value


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
    np.testing.assert_allclose(image.data_to_world((-0.5, -0.5)), (0, 0), atol=1e-9)
    widget.tiff_path.value = tmp_path / "render.tif"
    widget.export()
    with tifffile.TiffFile(tmp_path / "render.tif") as tif:
        numerator, denominator = tif.pages[0].tags["XResolution"].value
        assert denominator / numerator * 1000 == pytest.approx(20.0) and tif.pages[0].shape[-1] == 3


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
