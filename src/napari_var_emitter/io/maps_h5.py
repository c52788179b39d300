"""maps.h5: probability maps of a prediction.

  /scale_<s>      (T, h, w) float32, probability that a cell of scale s holds an emitter;
                  attribute stride_px: camera pixels per cell side (cell (0, 0) covers
                  [0, stride) x [0, stride) px) (modes progressive and both)
  /output_map     (T, H', W') detection probability on the output grid (modes super_resolution
                  and both); attribute cell_px: camera pixels per cell side (1 / the model's
                  upscale, times the binning in front of the network where there was one)
  root attributes pixel_size_nm, first_frame (0-based), mode
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from .atomic import atomic_path


def write_maps_h5(path: str | os.PathLike, scale_maps: list[np.ndarray] | None, strides_px, pixel_size_nm: float,
                  first_frame: int = 0, output_map: np.ndarray | None = None, output_cell_px: float = 0.5) -> None:
    """Write the per-scale maps (cells of strides_px camera pixels), the output-grid map (cells of
    output_cell_px), or both (None leaves one out)."""
    if scale_maps is None and output_map is None:
        raise ValueError("no maps to write")
    mode = "both" if scale_maps is not None and output_map is not None else (
        "progressive" if scale_maps is not None else "super_resolution")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update({"pixel_size_nm": pixel_size_nm, "first_frame": first_frame, "mode": mode})
        for si, (m, stride) in enumerate(zip(scale_maps or [], strides_px)):
            f.create_dataset(f"scale_{si}", data=m, compression="gzip").attrs["stride_px"] = stride
        if output_map is not None:
            f.create_dataset("output_map", data=output_map, compression="gzip").attrs["cell_px"] = output_cell_px
