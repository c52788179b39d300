"""The one model cache of a process: the CLI, the widgets and each Dask worker load a model file
once per device, and again only when the file changes. Thread-safe; a model is only read while
predicting (generation keeps no state in the modules), so threads may share one."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from ..model.checkpoint import BUNDLED, load_model, resolve_device
from ..model.predictor import VAREmitterPredictor

MAX_MODELS = 4
_LOCK = threading.Lock()
_MODELS: OrderedDict[tuple, tuple[VAREmitterPredictor, dict]] = OrderedDict()


def cached_model(weights: str | Path | None = None, device: str = "cpu") -> tuple[VAREmitterPredictor, dict]:
    """(model in eval mode on `device`, its card) for a weights path (None = bundled); "auto"
    devices resolve to cuda when there is one. Errors are InputErrors, as in load_model."""
    path = Path(weights).resolve() if weights is not None else BUNDLED
    device = resolve_device(device)
    key = (str(path), path.stat().st_mtime_ns if path.exists() else 0, device)
    with _LOCK:
        if key not in _MODELS:
            _MODELS[key] = load_model(path, device)
            while len(_MODELS) > MAX_MODELS:
                _MODELS.popitem(last=False)
        _MODELS.move_to_end(key)
        return _MODELS[key]
