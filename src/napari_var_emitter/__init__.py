"""napari-var-emitter: single-molecule localisation with a VAR-style next-scale predictor.

`predict(frames_adu, camera)` localises a (T, H, W) stack with the bundled model; see
`napari_var_emitter.model.inference.predict`.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "predict":  # imported on first use: torch loads only when needed
        from .model.inference import predict

        return predict
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
