"""napari-var-emitter: single-molecule localisation with a VAR-style next-scale predictor."""

__version__ = "0.1.0"
