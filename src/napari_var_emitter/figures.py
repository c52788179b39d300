"""Pictures for people: one frame with each scale's probability map and the detections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .io.atomic import atomic_path


def plot_scale_maps(frame_photons: np.ndarray, scale_maps: list[np.ndarray], strides_px, pixel_size_nm: float,
                    detections: pd.DataFrame, path: str | Path, truth: pd.DataFrame | None = None) -> None:
    """Save a PNG: the camera frame (H, W) with detections (and truth), then each scale's map
    (h, w), every panel drawn over the same extent in nm so cells sit over their pixels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    height, width = frame_photons.shape
    n = len(scale_maps) + 1
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.4))
    frame_extent = (0, width * pixel_size_nm / 1000, height * pixel_size_nm / 1000, 0)  # µm
    axes[0].imshow(frame_photons, cmap="gray", extent=frame_extent)
    if truth is not None:
        axes[0].scatter(truth["x_nm"] / 1000, truth["y_nm"] / 1000, s=30, facecolors="none",
                        edgecolors="cyan", linewidths=0.8, label="truth")
    axes[0].scatter(detections["x_nm"] / 1000, detections["y_nm"] / 1000, s=6, c="red", label="detected")
    axes[0].set_title("frame (photons)")
    axes[0].legend(fontsize=6, loc="lower right")
    for ax, m, stride in zip(axes[1:], scale_maps, strides_px):
        h, w = m.shape
        extent = (0, w * stride * pixel_size_nm / 1000, h * stride * pixel_size_nm / 1000, 0)
        ax.imshow(m, cmap="magma", vmin=0, vmax=1, extent=extent, interpolation="nearest")
        ax.set_title(f"scale {h}x{w} (stride {stride} px)")
        ax.set_xlim(frame_extent[:2])
        ax.set_ylim(frame_extent[2:])
    for ax in axes:
        ax.set_xlabel("x (µm)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
