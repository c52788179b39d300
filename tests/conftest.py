import numpy as np
import pytest

from napari_var_emitter.io.camera import Camera
from napari_var_emitter.simulate.config import SimulationConfig
from napari_var_emitter.simulate.stack import simulate_stack


@pytest.fixture(autouse=True)
def own_settings(tmp_path_factory, monkeypatch):
    """Each test keeps the plugin's settings, profiles and default result files in its own folder."""
    from napari_var_emitter.plugin import predict_widget

    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("NAPARI_VAR_EMITTER_CONFIG_DIR", str(home / "config"))
    monkeypatch.setattr(predict_widget, "RESULTS_DIR", home / "results")
    return home


@pytest.fixture(scope="session")
def small_stack():
    """A 20-frame 64x64 simulated stack and its ground truth."""
    config = SimulationConfig(frame_size=64, n_frames=20, density_per_um2=0.5,
                              camera=Camera(baseline_adu=100, e_per_adu=2.0, em_gain=1.0))
    return simulate_stack(config, np.random.default_rng(7))


@pytest.fixture
def viewer(make_napari_viewer):
    """A real napari viewer (Xvfb when headless)."""
    return make_napari_viewer()


@pytest.fixture
def errors(monkeypatch):
    """Messages the plugin's widgets show as napari error notifications, collected instead of shown."""
    import importlib
    import pkgutil

    from napari_var_emitter import plugin

    shown = []
    for info in pkgutil.iter_modules(plugin.__path__):
        module = importlib.import_module(f"napari_var_emitter.plugin.{info.name}")
        if hasattr(module, "show_error"):
            monkeypatch.setattr(module, "show_error", shown.append)
    return shown

