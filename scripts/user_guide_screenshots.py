"""Screenshots for docs/user-guide.md, taken from a real viewer (run under Xvfb if headless):

    xvfb-run -a .venv/bin/python scripts/user_guide_screenshots.py

Opens the sample, predicts frame 4 (with the per-scale maps) and frames 1-20 with the Predict
widget, renders a super-resolution image, filters the detections, fine-tunes for 20 steps; in a
second viewer calibrates the PSF on the bead sample, localises the astigmatic sample in 3-D and
views it in 3-D; and writes PNGs into docs/images/. Settings go to a fresh folder, so the widgets show defaults.
"""

import os
import tempfile
from pathlib import Path

os.environ["NAPARI_VAR_EMITTER_CONFIG_DIR"] = tempfile.mkdtemp(prefix="var-emitter-guide-settings-")

import napari  # noqa: E402
from napari.utils.io import imsave  # noqa: E402
from qtpy.QtWidgets import QApplication  # noqa: E402

PLUGIN = "napari-var-emitter"
OUT = Path(__file__).resolve().parents[1] / "docs" / "images"


def wait(widget) -> None:
    """Until the widget's job has ended and its last layout change is drawn."""
    while widget.worker is not None:
        QApplication.processEvents()
    for _ in range(5):  # a layout change climbs one parent per pass
        QApplication.processEvents()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer()
    viewer.window._qt_window.resize(1500, 950)
    viewer.open_sample(PLUGIN, "simulated")
    _, predict = viewer.window.add_plugin_dock_widget(PLUGIN, "Predict emitters")
    viewer.dims.set_point(0, 3)
    predict.frames.value, predict.show_maps.value = "current frame", True
    predict.start()
    wait(predict)
    viewer.layers["ground truth"].border_color = "cyan"
    viewer.reset_view()
    imsave(OUT / "predict_window.png", viewer.screenshot(canvas_only=False, flash=False))
    # each scale's map over the same frame, with the detections
    for name in [layer.name for layer in viewer.layers if " scale " in layer.name]:
        for layer in viewer.layers:
            layer.visible = layer.name in ("simulated SMLM stack", name, "simulated SMLM stack detections")
        imsave(OUT / f"map_{name.split(' scale ')[1].split(' ')[0]}.png", viewer.screenshot(flash=False))
    predict.show_maps.value = False
    predict.frames.value = "all frames"
    predict.out_file.value = Path(tempfile.mkdtemp()) / "sample.locs.csv"
    predict.start()
    wait(predict)
    _, filtering = viewer.window.add_plugin_dock_widget(PLUGIN, "Filter localisations", tabify=True)
    filtering.layer.value = viewer.layers["simulated SMLM stack detections"]
    filtering.ranges["uncertainty_nm"][1].value = 10.0
    filtering.ranges["probability"][0].value = 0.5
    for layer in viewer.layers:
        layer.visible = layer.name in ("simulated SMLM stack", "simulated SMLM stack detections")
    imsave(OUT / "filter_window.png", viewer.screenshot(canvas_only=False, flash=False))
    filtering.keep_all()
    predict.render_nm.value = 20.0
    predict.render_image()
    for layer in viewer.layers:
        layer.visible = "super-resolution" in layer.name
    viewer.reset_view()
    imsave(OUT / "render.png", viewer.screenshot(flash=False))
    _, finetune = viewer.window.add_plugin_dock_widget(PLUGIN, "Fine-tune model", tabify=True)
    finetune.steps.value, finetune.out_dir.value = 20, Path(tempfile.mkdtemp()) / "fine-tuned"
    finetune.start()
    wait(finetune)
    for layer in viewer.layers:
        layer.visible = layer.name in ("simulated SMLM stack",)
    imsave(OUT / "finetune_window.png", viewer.screenshot(canvas_only=False, flash=False))
    viewer.close()
    three_d()


def three_d() -> None:
    viewer = napari.Viewer()
    viewer.window._qt_window.resize(1500, 1150)
    viewer.open_sample(PLUGIN, "bead_stack")
    viewer.open_sample(PLUGIN, "astigmatic_stack")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "3-D astigmatic")
    widget.calibrate()
    while widget.calibration_worker is not None:
        QApplication.processEvents()
    widget.frames.value = "all frames"
    widget.start()
    wait(widget)
    viewer.layers["astigmatic bead z-stack"].visible = False
    viewer.layers["3-D ground truth"].visible = False
    viewer.dims.set_point(0, 12)
    viewer.reset_view()
    imsave(OUT / "astigmatic_window.png", viewer.screenshot(canvas_only=False, flash=False))
    view = widget.view_3d()
    view.window._qt_window.resize(1000, 800)
    QApplication.processEvents()
    view.reset_view()
    view.scene.camera.angles = (0.0, -30.0, 80.0)
    imsave(OUT / "view_3d.png", view.screenshot(flash=False))
    view.close()
    viewer.close()


if __name__ == "__main__":
    main()
