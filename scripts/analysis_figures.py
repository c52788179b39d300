"""Figures for docs/analysis.md: the analysis commands on a simulated, drifting filament movie
(the CLI's own plots), then the widgets in a real viewer (run under Xvfb if headless):

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/analysis_figures.py

Writes PNGs into docs/images/ and prints what each command printed.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ["NAPARI_VAR_EMITTER_CONFIG_DIR"] = tempfile.mkdtemp(prefix="var-emitter-analysis-settings-")

import numpy as np  # noqa: E402

from napari_var_emitter.io.localizations import write_localizations  # noqa: E402
from napari_var_emitter.simulate.config import SimulationConfig, StructureConfig  # noqa: E402
from napari_var_emitter.simulate.localizations import drift_trajectory, simulate_localizations  # noqa: E402

PLUGIN = "napari-var-emitter"
OUT = Path(__file__).resolve().parents[1] / "docs" / "images"
SEED = 2027  # a seed no default was chosen on


def cli(*argv: str) -> None:
    print("$ var-emitter " + " ".join(argv))
    result = subprocess.run([sys.executable, "-m", "napari_var_emitter", *argv], capture_output=True, text=True,
                            check=True)
    print(result.stdout)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="var-emitter-analysis-"))
    config = SimulationConfig(frame_size=(96, 96), n_frames=10_000, density_per_um2=0.5,
                              structure=StructureConfig(kind="filaments"))
    rng = np.random.default_rng(SEED)
    locs, _ = simulate_localizations(config, rng, drift_trajectory(config.n_frames, rng, total_nm=300.0))
    table = work / "filaments.csv"
    write_localizations(table, locs)
    cli("drift", str(table), "--out", str(work / "filaments_dc.csv"), "--plot", str(OUT / "analysis_drift.png"),
        "--overwrite")  # (the docs' figures of the last time)
    cli("merge", str(work / "filaments_dc.csv"), "--out", str(work / "filaments_merged.csv"))
    cli("resolution", str(work / "filaments_dc.csv"), "--plot", str(OUT / "analysis_resolution.png"), "--overwrite")
    cli("stats", str(work / "filaments_dc.csv"), "--plot", str(OUT / "analysis_stats.png"), "--overwrite")
    cli("render", str(work / "filaments_dc.csv"), "--out", str(work / "render.tif"), "--pixel-nm", "10",
        "--colour-by", "frame", "--scale-bar-nm", "0")
    widgets(work)


def widgets(work: Path) -> None:
    import napari
    from napari.utils.io import imsave
    from qtpy.QtWidgets import QApplication

    def wait(widget) -> None:
        while widget.worker is not None:
            QApplication.processEvents()

    viewer = napari.Viewer()
    viewer.window._qt_window.resize(1500, 950)
    (points,) = viewer.open(str(work / "filaments.csv"), plugin=PLUGIN)
    _, drift = viewer.window.add_plugin_dock_widget(PLUGIN, "Drift correction")
    drift.start()
    wait(drift)
    _, render = viewer.window.add_plugin_dock_widget(PLUGIN, "Render super-resolution", tabify=True)
    render.colour_by.value = "frame"  # the table as localised: the drift smears the filaments from blue to red
    render.start()
    wait(render)
    for layer in viewer.layers:
        layer.visible = layer.name.endswith("nm/px)")
    viewer.reset_view()
    QApplication.processEvents()
    imsave(OUT / "analysis_render_window.png", viewer.screenshot(canvas_only=False, flash=False))
    _, resolution = viewer.window.add_plugin_dock_widget(PLUGIN, "Precision and resolution", tabify=True)
    resolution.layer.value = viewer.layers[f"{points.name} drift-corrected"]
    resolution.start()
    wait(resolution)
    QApplication.processEvents()
    imsave(OUT / "analysis_resolution_window.png", viewer.screenshot(canvas_only=False, flash=False))
    viewer.close()


if __name__ == "__main__":
    main()
