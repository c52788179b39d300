"""maps.h5: probability maps of a prediction.

  /scale_<s>      (T, h, w) float32, probability that a cell of scale s holds an emitter;
                  attribute stride_px: camera pixels per cell side (cell (0, 0) covers
                  [0, stride) x [0, stride) px) (modes progressive and both)
  /output_map     (T, H * upscale, W * upscale) detection probability on the output grid
                  (modes super_resolution and both); attribute cell_px = 1 / upscale
  root attributes pixel_size_nm, first_frame (0-based), mode
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from .atomic import atomic_path


def write_maps_h5(path: str | os.PathLike, scale_maps: list[np.ndarray] | None, strides_px, pixel_size_nm: float,
                  first_frame: int = 0, output_map: np.ndarray | None = None, upscale: int = 2) -> None:
    """Write the per-scale maps, the output-grid map, or both (None leaves one out)."""
    if scale_maps is None and output_map is None:
        raise ValueError("no maps to write")
    mode = "both" if scale_maps is not None and output_map is not None else (
        "progressive" if scale_maps is not None else "super_resolution")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update({"pixel_size_nm": pixel_size_nm, "first_frame": first_frame, "mode": mode})
        for si, (m, stride) in enumerate(zip(scale_maps or [], strides_px)):
            f.create_dataset(f"scale_{si}", data=m, compression="gzip").attrs["stride_px"] = stride
        if output_map is not None:
            f.create_dataset("output_map", data=output_map, compression="gzip").attrs["cell_px"] = 1 / upscale
