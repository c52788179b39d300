"""Filtering localisations: expressions, the CLI and the Filter widget in a real viewer."""

import numpy as np
import pandas as pd
import pytest

from napari_var_emitter.analysis.filter import filter_mask, parse_filter, range_expression
from napari_var_emitter.cli import main
from napari_var_emitter.errors import InputError
from napari_var_emitter.io.localizations_csv import read_localizations_csv, write_localizations_csv

TABLE = pd.DataFrame({"frame": [0, 0, 1, 2], "x_nm": [100.0, 200.0, 300.0, 400.0], "y_nm": [50.0, 60.0, 70.0, 80.0],
                      "photons": [300.0, 1500.0, 2500.0, 900.0], "uncertainty_nm": [35.0, 12.0, 8.0, 15.0],
                      "probability": [0.4, 0.9, 0.99, 0.7]})


def test_expressions_keep_what_they_say():
    assert filter_mask(TABLE, "photons > 500 and uncertainty_nm < 14").tolist() == [False, True, True, False]
    assert filter_mask(TABLE, "1000 <= photons <= 2000, probability >= 0.5").tolist() == [False, True, False, False]
    assert filter_mask(TABLE, "").all()
    ranges = {"photons": (900.0, 2500.0), "probability": (0.0, 0.95)}
    assert filter_mask(TABLE, range_expression(ranges)).tolist() == [False, True, False, True]
    assert [str(c) for c in parse_filter("-1 < photons")] == ["photons > -1"]
    # frames 1-based, as the CSV and every widget count them (the table's 0 is the file's frame 1)
    assert filter_mask(TABLE, "frame == 1").tolist() == [True, True, False, False]
    assert filter_mask(TABLE, "3 != frame, photons > 500").tolist() == [False, True, True, False]
    assert filter_mask(TABLE, "frame <= 2").tolist() == [True, True, True, False]
    gaps = TABLE.assign(probability=[0.4, np.nan, 0.99, 0.7])  # a missing value meets no condition, != neither
    assert filter_mask(gaps, "probability != 0.4").tolist() == [False, False, True, True]
    assert [str(c) for c in parse_filter("1 == frame")] == ["frame == 1"]
    assert range_expression({"photons": (None, 2000.0), "probability": (0.5, None), "x_nm": (None, None)}) == (
        "photons <= 2000 and probability >= 0.5")


@pytest.mark.parametrize("bad, says", [
    ("photons > lots", "compare a column with a number"), ("__import__('os').remove('x')", "each part must"),
    ("photons = 3", "not understood"), ("photons is 3", "each part must"),
    ("photons > 1 or probability > 0.5", "each part must"),
    ("brightness > 3", "no column 'brightness'"), ("photons >", "not understood"),
    ("uncertainty [nm] < 10", r"name the column uncertainty_nm, not 'uncertainty \[nm\]' as the CSV's header does")])
def test_bad_expressions_say_what_is_wrong(bad, says):
    with pytest.raises(InputError, match=says):
        filter_mask(TABLE, bad)


def test_cli_filter_writes_the_kept_rows_and_never_overwrites_its_input(tmp_path, capsys):
    source = tmp_path / "locs.csv"
    write_localizations_csv(source, TABLE)
    out = tmp_path / "kept.csv"
    assert main(["filter", str(source), "--out", str(out), "--where", "photons > 500",
                 "--where", "uncertainty_nm < 14"]) == 0
    assert "kept 2 of 4" in capsys.readouterr().out
    kept = read_localizations_csv(out)
    assert kept["photons"].tolist() == [1500.0, 2500.0] and kept["frame"].tolist() == [0, 1]
    assert main(["filter", str(source), "--out", str(source), "--where", "photons > 1"]) == 2
    assert len(read_localizations_csv(source)) == 4
    assert main(["filter", str(source), "--out", str(tmp_path / "new.csv"), "--where", "snr > 3"]) == 2
    assert "no column 'snr'" in capsys.readouterr().err
    # a result there already is never replaced by mistake (a new user's was, by another stack's): --overwrite
    assert main(["filter", str(source), "--out", str(out), "--where", "photons > 1"]) == 2
    assert "kept.csv exists: give a new file, or --overwrite to replace it" in capsys.readouterr().err
    assert len(read_localizations_csv(out)) == 2
    assert main(["filter", str(source), "--out", str(out), "--where", "photons > 1", "--overwrite"]) == 0
    assert len(read_localizations_csv(out)) == 4
    # a folder that is not there is made, and said (a mistyped folder is not made silently)
    new = tmp_path / "reslts" / "run 2" / "kept.csv"
    assert main(["filter", str(source), "--out", str(new), "--where", "photons > 1"]) == 0
    assert f"made the folder {tmp_path / 'reslts'}" in capsys.readouterr().err  # the outermost: the typo's
    assert len(read_localizations_csv(new)) == 4
    assert main(["filter", str(source), "--out", str(new), "--where", "photons > 1", "--overwrite"]) == 0
    assert "made the folder" not in capsys.readouterr().err  # there already


def test_filter_widget_hides_points_live_and_exports_what_it_keeps(make_napari_viewer, tmp_path, monkeypatch):
    from napari_var_emitter.plugin import writers
    from napari_var_emitter.plugin.filter_widget import FilterWidget

    viewer = make_napari_viewer()
    source = tmp_path / "locs.csv"
    write_localizations_csv(source, TABLE)
    points = viewer.open(str(source), plugin="napari-var-emitter")[0]
    widget = FilterWidget(viewer)
    assert widget.layer.value is points and list(widget.ranges) == ["photons", "uncertainty_nm", "probability"]
    assert points.shown.all() and widget.status.value == "kept 4 of 4 localisations"
    box = widget.ranges["photons"][1].native  # wide enough for its number and its buttons (it showed "2500.")
    assert box.minimumWidth() >= box.fontMetrics().horizontalAdvance(box.text()) + 60
    widget.ranges["photons"][0].value = 500.0
    widget.ranges["uncertainty_nm"][1].value = 14.0
    assert points.shown.tolist() == [False, True, True, False]
    assert widget.status.value == "kept 2 of 4 localisations"
    # the expression shown is what the CLI takes, and keeps the same rows; the ranges left whole are not in it
    assert filter_mask(TABLE, widget.expression.value).tolist() == points.shown.tolist()
    # only the sides narrowed: photons from 500 up, uncertainty up to 14 (the data's bounds left open)
    assert widget.expression.value == "photons >= 500 and uncertainty_nm <= 14"
    assert list(widget.histograms) == list(widget.ranges) and all(len(f.axes) == 1 for f in widget.histograms.values())
    widget.csv_path.value = tmp_path / "kept.csv"
    widget.export_csv()
    assert read_localizations_csv(tmp_path / "kept.csv")["photons"].tolist() == [1500.0, 2500.0]
    assert widget.status.value == f"kept 2 of 4 localisations\nwrote 2 localisations to {tmp_path / 'kept.csv'}"
    errors = []
    monkeypatch.setattr(writers, "show_error", errors.append)
    widget.csv_path.value = ""  # none chosen: where to choose it
    widget.export_csv()
    assert errors == ["choose a .csv file to export to: type its name in the box, or press Select file beside it"]
    errors.clear()
    widget.csv_path.value = tmp_path / "kept"  # no .csv: it said only "choose a .csv file to export to"
    widget.export_csv()
    assert errors == ["'kept' is not a .csv file: name it kept.csv to export to it"]
    assert not (tmp_path / "kept").exists()
    assert widget.status.value == ("kept 2 of 4 localisations\n✖ not exported: 'kept' is not a .csv file: name it "
                                   "kept.csv to export to it")  # not the last export's line, as if it had
    widget.csv_path.value = tmp_path / "kept.txt"
    widget.export_csv()
    assert errors[-1] == "'kept.txt' is not a .csv file: name it kept.csv to export to it"
    (tmp_path / "a file").write_text("")
    widget.csv_path.value = tmp_path / "a file" / "kept.csv"  # a write that fails (OSError): said, not raised
    widget.export_csv()
    assert errors[-1] == f"export to {tmp_path / 'a file' / 'kept.csv'}: {tmp_path / 'a file'} is a file, not a folder"
    assert widget.status.value == f"kept 2 of 4 localisations\n✖ not exported: {errors[-1]}"
    widget.csv_path.value = tmp_path / "again.csv"  # the last export's line goes, the Filter's stays
    widget.export_csv()
    assert widget.status.value == f"kept 2 of 4 localisations\nwrote 2 localisations to {tmp_path / 'again.csv'}"
    widget.export_csv()  # a file replaced, and a folder made, are said
    assert widget.status.value.endswith(f"{tmp_path / 'again.csv'} (it replaces the file of that name)")
    widget.csv_path.value = tmp_path / "reslts" / "run 2" / "kept.csv"
    widget.export_csv()
    assert widget.status.value.endswith(f"{tmp_path / 'reslts' / 'run 2' / 'kept.csv'} (made the folder "
                                        f"{tmp_path / 'reslts'})")
    widget.keep_all()
    assert points.shown.all()


def test_a_filter_box_names_its_column_when_it_cannot_take_a_key(make_napari_viewer, tmp_path, qtbot, monkeypatch):
    """Trying the plugin, a letter in a range's upper box was said as "to: -1.000 to 30.792 only; 'a'
    not taken": neither which column nor why."""
    from napari_var_emitter.plugin import dock
    from napari_var_emitter.plugin.filter_widget import COLUMNS, FilterWidget

    said = []
    monkeypatch.setattr(dock, "show_warning", said.append)
    viewer = make_napari_viewer()
    source = tmp_path / "locs.csv"
    write_localizations_csv(source, TABLE)
    viewer.open(str(source), plugin="napari-var-emitter")
    widget = FilterWidget(viewer)
    widget.show()
    box = widget.ranges["uncertainty_nm"][1].native
    box.setFocus()
    box.lineEdit().selectAll()
    qtbot.keyClicks(box, "a")
    assert said == [f"{COLUMNS['uncertainty_nm']} to: 'a' is not a number; it stays {box.textFromValue(box.value())}"]


def test_filter_widget_keeps_every_point_until_a_range_is_narrowed(make_napari_viewer, tmp_path):
    """Values with more decimals than the boxes show (and than 6 significant digits) are kept at
    the start: the boxes round outward."""
    from napari_var_emitter.plugin.filter_widget import FilterWidget

    viewer = make_napari_viewer()
    awkward = TABLE.assign(photons=TABLE["photons"] * 1.23456789 + 0.000456, probability=[0.123457, 0.5, 0.75, 0.98765],
                           uncertainty_nm=TABLE["uncertainty_nm"] * 531.1)
    points = viewer.add_points(awkward[["frame", "y_nm", "x_nm"]].to_numpy(), features=awkward)  # as Predict adds them
    widget = FilterWidget(viewer)
    assert points.shown.all() and widget.status.value == "kept 4 of 4 localisations"
    assert widget.expression.value == ""  # no range narrowed


def test_filter_widget_filters_on_the_refinements_columns(make_napari_viewer, tmp_path):
    """Per-axis uncertainties and the `fitted` flag of the refinement (docs/refinement.md) each
    get a histogram and a kept range, and the expression the CLI takes keeps the same rows."""
    from napari_var_emitter.plugin.filter_widget import FilterWidget

    viewer = make_napari_viewer()
    refined = TABLE.assign(uncertainty_x_nm=[9.0, 11.0, 13.0, 30.0], uncertainty_y_nm=[8.0, 12.0, 12.0, 25.0],
                           fitted=[1, 1, 0, 1])
    write_localizations_csv(tmp_path / "refined.csv", refined)
    points = viewer.open(str(tmp_path / "refined.csv"), plugin="napari-var-emitter")[0]
    widget = FilterWidget(viewer)
    assert {"uncertainty_x_nm", "uncertainty_y_nm", "fitted"} <= set(widget.ranges)
    # a readable histogram above each range (the dock scrolls), the boxes right under their histogram
    for column, (lo, _hi) in widget.ranges.items():
        canvas = widget.histograms[column].canvas
        assert canvas.minimumHeight() >= 80 and canvas.parentWidget() is lo.native.parentWidget().parentWidget()
    widget.ranges["uncertainty_x_nm"][1].value = 20.0
    widget.ranges["fitted"][0].value = 0.5
    assert points.shown.tolist() == [True, True, False, False]
    assert filter_mask(refined, widget.expression.value).tolist() == points.shown.tolist()
    # z only where it varies: a 2-D table with z = 0 (a simulator's truth) has no z row
    flat = viewer.add_points(np.zeros((4, 3)), features=refined.assign(z_nm=0.0), name="flat")
    widget.layer.value = flat
    assert "z_nm" not in widget.ranges and "uncertainty_x_nm" in widget.ranges


def test_filter_widget_shows_every_column_of_a_refined_run_without_scrolling_sideways(make_napari_viewer, qtbot,
                                                                                       recwarn):
    """Beside Predict in a 1366x768 window, the Filter of a refined run's nine columns (the long
    significance label among them) fits its rows in the dock's width, and draws its histograms
    without matplotlib giving up on their layout; Predict's settings stay in view above its bar."""
    from napari_var_emitter.plugin.dock import MIN_SCROLL_PX
    from napari_var_emitter.plugin.filter_widget import FilterWidget
    from napari_var_emitter.plugin.predict_widget import PredictWidget

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1366, 740)
    predict = PredictWidget(viewer)
    viewer.window.add_dock_widget(predict, name="Predict", area="right")
    refined = TABLE.assign(uncertainty_x_nm=[9.0, 11.0, 13.0, 30.0], uncertainty_y_nm=[8.0, 12.0, 12.0, 25.0],
                           background=[10.0, 12.0, 11.0, 9.0], sigma_nm=130.0, fitted=[1, 1, 0, 2],
                           significance=[4.0, 30.0, 80.0, 12.0])
    viewer.add_points(refined[["frame", "y_nm", "x_nm"]].to_numpy(), features=refined.drop(columns=["x_nm", "y_nm"]))
    widget = FilterWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Filter", area="right")
    assert len(widget.ranges) == 9
    qtbot.waitUntil(lambda: widget.scroll_area.minimumWidth() >= widget.body.minimumSizeHint().width())
    qtbot.wait(100)
    assert widget.scroll_area.horizontalScrollBar().maximum() == 0
    assert not [w for w in recwarn if "layout not applied" in str(w.message)]
    # napari gives the dock just added nearly all the column: Predict keeps rows in view above its bar
    assert predict.scroll_area.height() >= MIN_SCROLL_PX and widget.scroll_area.height() >= MIN_SCROLL_PX


def test_filter_widget_follows_new_data_in_its_layer_and_the_dataset_in_view(make_napari_viewer, qtbot, tmp_path):
    """Predict run again into the layer being filtered: the count, the histograms and the export
    are of the new localisations, the range the user narrowed still applied (the others span the
    new data). Another dataset shown alone (this layer hidden): the Filter moves to its layer."""
    from napari_var_emitter.plugin.filter_widget import FilterWidget
    from napari_var_emitter.plugin.layers import refill

    viewer = make_napari_viewer()
    points = viewer.add_points(TABLE[["frame", "y_nm", "x_nm"]].to_numpy(), features=TABLE)
    widget = FilterWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.ranges["uncertainty_nm"][1].value = 14.0
    assert widget.status.value == "kept 2 of 4 localisations"
    refill(points, TABLE.iloc[:0], 1.0)  # a new run into the layer empties it first ...
    qtbot.wait(400)
    assert widget.ranges["uncertainty_nm"][1].value == 14.0
    again = pd.DataFrame({"frame": [0, 1, 1, 2, 3], "x_nm": [1.0, 2.0, 3.0, 4.0, 5.0],
                          "y_nm": [5.0, 4.0, 3.0, 2.0, 1.0], "photons": [100.0, 200.0, 9000.0, 400.0, 500.0],
                          "uncertainty_nm": [5.0, 13.0, 20.0, 40.0, 9.0], "probability": [0.5, 0.6, 0.7, 0.8, 0.9]})
    refill(points, again, 1.0)  # as a Predict run into the same layer does
    qtbot.waitUntil(lambda: widget.status.value == "kept 3 of 5 localisations", timeout=5_000)
    assert points.shown.tolist() == [True, True, False, False, True]
    assert widget.ranges["photons"][1].value == 9000.0  # not narrowed: spans the new data
    widget.csv_path.value = tmp_path / "kept.csv"
    widget.export_csv()
    assert read_localizations_csv(tmp_path / "kept.csv")["uncertainty_nm"].tolist() == [5.0, 13.0, 9.0]
    other = viewer.add_points(TABLE[["frame", "y_nm", "x_nm"]].to_numpy(), features=TABLE, name="other dataset")
    assert widget.layer.value is points  # both shown: the user's choice stands
    points.visible = False
    qtbot.waitUntil(lambda: widget.layer.value is other)  # once napari is done hiding (a dataset: several layers)
    assert widget.status.value == "kept 4 of 4 localisations"
    points.visible, widget.layer.value = True, points  # back to it: its range comes back with it
    assert widget.ranges["uncertainty_nm"][1].value == 14.0
    assert points.shown.tolist() == [True, True, False, False, True]
    viewer.window.remove_dock_widget(widget.native)  # closed: a later run into the layer is not filtered
    said = widget.status.value
    refill(points, TABLE, 1.0)
    qtbot.wait(400)
    assert widget.watched is None and widget.status.value == said
    viewer.add_points(TABLE[["frame", "y_nm", "x_nm"]].to_numpy(), features=TABLE)  # ... and it lets go of the viewer
    qtbot.wait(100)
    emitters = [viewer.layers.events.inserted, viewer.layers.events.removed,
                *(layer.events.visible for layer in viewer.layers)]
    followers = [callback for emitter in emitters for callback in emitter.callbacks
                 if isinstance(callback, tuple) and callback[0]() is widget.follow_shown]
    assert not followers


def test_a_long_filter_status_wraps_instead_of_widening_its_dock(make_napari_viewer, qtbot, tmp_path):
    """The count under the Filter names a hidden layer, and an export its file: a long name or path
    wraps there (trying the plugin, it pushed the dock column to half a laptop's screen)."""
    from napari_var_emitter.plugin.filter_widget import FilterWidget

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1366, 740)
    name = "sample_11frames.tif detections drift-corrected and merged"
    points = viewer.add_points(TABLE[["frame", "y_nm", "x_nm"]].to_numpy(), name=name,
                               features=TABLE.drop(columns=["x_nm", "y_nm"]))
    widget = FilterWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Filter", area="right")
    qtbot.wait(50)
    narrowest = widget.native.minimumSizeHint().width()
    points.visible = False
    widget.ranges["photons"][0].value = 500.0
    assert widget.status.value == f"kept 3 of 4 localisations ({name} is hidden: tick its eye to see them)"
    folder = tmp_path / ("a_folder_with_a_long_name_as_users_have_them" * 2)
    folder.mkdir()
    widget.csv_path.value = folder / "kept_localisations_of_the_first_movie.csv"
    widget.export_csv()
    assert str(folder / "kept_localisations_of_the_first_movie.csv") in widget.status.value
    qtbot.wait(50)
    assert widget.native.minimumSizeHint().width() == narrowest
