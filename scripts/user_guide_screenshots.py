"""Screenshots for docs/user-guide.md, taken from a real viewer (run under Xvfb if headless):

    xvfb-run -a .venv/bin/python scripts/user_guide_screenshots.py

Opens the sample, predicts frame 3 and frames 0-19 with the Predict widget, renders a
super-resolution image, fine-tunes for 20 steps, and writes PNGs into docs/images/.
"""

from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication
from napari.utils.io import imsave

PLUGIN = "napari-var-emitter"
OUT = Path(__file__).resolve().parents[1] / "docs" / "images"


def wait(widget) -> None:
    while widget.worker is not None:
        QApplication.processEvents()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer()
    viewer.window._qt_window.resize(1500, 950)
    viewer.open_sample(PLUGIN, "simulated")
    _, predict = viewer.window.add_plugin_dock_widget(PLUGIN, "Predict emitters")
    viewer.dims.set_point(0, 3)
    predict.start()
    wait(predict)
    for layer in viewer.layers:
        layer.visible = layer.name in ("simulated SMLM stack", "simulated SMLM stack scale 3 (4 px)",
                                       "simulated SMLM stack detections", "ground truth")
    viewer.layers["ground truth"].border_color = "cyan"
    viewer.reset_view()
    imsave(OUT / "predict_window.png", viewer.screenshot(canvas_only=False, flash=False))
    # each scale's map over the same frame, with the detections
    for name in [layer.name for layer in viewer.layers if " scale " in layer.name]:
        for layer in viewer.layers:
            layer.visible = layer.name in ("simulated SMLM stack", name, "simulated SMLM stack detections")
        imsave(OUT / f"map_{name.split(' scale ')[1].split(' ')[0]}.png", viewer.screenshot(flash=False))
    predict.frames.value = "all frames"
    predict.start()
    wait(predict)
    predict.render_nm.value = 20.0
    predict.render_image()
    for layer in viewer.layers:
        layer.visible = "super-resolution" in layer.name
    viewer.reset_view()
    imsave(OUT / "render.png", viewer.screenshot(flash=False))
    _, finetune = viewer.window.add_plugin_dock_widget(PLUGIN, "Fine-tune model", tabify=True)
    finetune.steps.value, finetune.out_dir.value = 20, Path("/tmp/var-emitter-guide-finetune")
    if (Path("/tmp/var-emitter-guide-finetune") / "model.safetensors").exists():
        (Path("/tmp/var-emitter-guide-finetune") / "model.safetensors").unlink()
    finetune.start()
    wait(finetune)
    for layer in viewer.layers:
        layer.visible = layer.name in ("simulated SMLM stack",)
    imsave(OUT / "finetune_window.png", viewer.screenshot(canvas_only=False, flash=False))
    viewer.close()


if __name__ == "__main__":
    main()
