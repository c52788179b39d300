"""Inference, the stage after the model: typed options (options.py), tiling and stitching
(tiling.py), post-processing (postprocess.py), frames -> localisations (frames.py), long stacks
chunked, resumable and on Dask (long_stack.py), the one model cache (model_cache.py) and the
check of the data against the model's training ranges (envelope.py). The CLI, the napari widgets
and the Dask workers all call it.

`predict(frames_adu, camera, options)` is the entry point; names load on first use, so importing
the options does not load torch."""

_EXPORTS = {"Prediction": "frames", "predict": "frames", "predict_frames": "frames",
            "PredictOptions": "options", "MAP_MODES": "options"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
