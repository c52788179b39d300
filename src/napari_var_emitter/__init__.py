"""napari-var-emitter: single-molecule localisation with a VAR-style next-scale predictor.

`napari_var_emitter.predict.predict(frames_adu, camera)` localises a (T, H, W) stack with the
bundled model (imported on first use there: torch loads only when needed).
"""

__version__ = "0.1.0"
