"""The analysis plots, drawn into a matplotlib Figure in given colours: the CLI saves them as PNG
(light), the widgets draw them in napari's theme."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..io.atomic import atomic_path
from .drift import Drift
from .resolution import FRC, FRC_THRESHOLD, NeNA, frc_text, nena_text
from .stats import SUMMARISED, Stats


@dataclasses.dataclass(frozen=True)
class Colours:
    background: str = "white"
    foreground: str = "black"
    accent: str = "tab:orange"
    second: str = "tab:blue"


def style(axes, colours: Colours, tick_size: float | None = 7) -> None:
    """Axes in the given colours: face, ticks (labels of tick_size points; None: matplotlib's
    default), axis labels and spines."""
    axes.set_facecolor(colours.background)
    axes.tick_params(colors=colours.foreground, **({} if tick_size is None else {"labelsize": tick_size}))
    axes.xaxis.label.set_color(colours.foreground)
    axes.yaxis.label.set_color(colours.foreground)
    axes.title.set_color(colours.foreground)
    for spine in axes.spines.values():
        spine.set_color(colours.foreground)


def _start(figure: Figure, colours: Colours, n: int = 1) -> list:
    figure.clear()
    figure.set_facecolor(colours.background)
    axes = [figure.add_subplot(n, 1, i + 1) for i in range(n)] if n <= 2 else \
        [figure.add_subplot(2, 2, i + 1) for i in range(n)]
    for a in axes:
        style(a, colours)
    return axes


def _frame_axis(axes) -> None:
    """An x axis of frames (1-based): whole frames only (an 11-frame movie's read 2.5, 5.0, 7.5)."""
    axes.set_xlabel("frame")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))


def draw_drift(figure: Figure, drift: Drift, colours: Colours = Colours()) -> None:
    """dx and dy (nm) against frame, with the points they were interpolated through."""
    (axes,) = _start(figure, colours)
    frames = np.arange(1, len(drift.drift_nm_T2) + 1)
    for k, (name, colour) in enumerate((("dx", colours.accent), ("dy", colours.second))):
        axes.plot(frames, drift.drift_nm_T2[:, k], color=colour, label=f"{name} [nm]", lw=1.2)
        if len(drift.anchor_frames) <= 200:
            axes.plot(drift.anchor_frames + 1, drift.anchor_nm_S2[:, k], "o", color=colour, ms=3)
    _frame_axis(axes)
    axes.set_ylabel("drift [nm]")
    axes.set_title(f"drift ({'RCC segments' if drift.method == 'rcc' else 'fiducials'})", fontsize=9)
    legend = axes.legend(fontsize=7, frameon=False)
    for text in legend.get_texts():
        text.set_color(colours.foreground)


def draw_resolution(figure: Figure, nena: NeNA | None, frc: FRC | None, colours: Colours = Colours()) -> None:
    """The NeNA distance histogram with its fit (left/top) and the FRC curve (right/bottom)."""
    axes = _start(figure, colours, 2)
    if nena is not None:
        axes[0].hist(nena.distances_nm, bins=60, range=(0, nena.d_max_nm), density=True, color=colours.foreground,
                     alpha=0.35)
        d = np.linspace(0, nena.d_max_nm, 300)
        axes[0].plot(d, nena.density(d), color=colours.accent, lw=1.5)
        axes[0].set_title(f"NeNA precision {nena_text(nena)}", fontsize=9)
    axes[0].set_xlabel("distance to the next frame's nearest localisation [nm]", fontsize=8)
    if frc is not None:
        axes[1].plot(frc.frequency_per_nm * 1000, frc.correlation, color=colours.second, lw=1.2)
        axes[1].axhline(FRC_THRESHOLD, color=colours.foreground, lw=0.8, ls="--")
        if frc.settled:
            axes[1].axvline(1000 / frc.resolution_nm, color=colours.accent, lw=1)
        axes[1].set_title(f"FRC resolution {frc_text(frc)}", fontsize=9)
    axes[1].set_xlabel("spatial frequency [1/µm]")
    axes[1].set_ylabel("FRC")


def draw_stats(figure: Figure, stats: Stats, colours: Colours = Colours()) -> None:
    """Localisations per frame with the bleaching fit, and histograms of photons, uncertainty and (3-D) z."""
    columns = [c for c in ("photons", "uncertainty_nm", "z_nm") if c in stats.summary]
    axes = _start(figure, colours, 1 + len(columns) if columns else 1)
    frames = np.arange(1, len(stats.counts_per_frame) + 1)
    axes[0].plot(frames, stats.counts_per_frame, color=colours.foreground, alpha=0.3, lw=0.6)
    axes[0].plot(stats.bin_frames + 1, stats.bin_counts, color=colours.second, lw=1.2)
    if stats.bleach_fit is not None:
        a, tau, c = stats.bleach_fit
        axes[0].plot(frames, a * np.exp(-(frames - 1) / tau) + c, color=colours.accent, lw=1.2)
        axes[0].set_title(f"bleaching: half-life {tau * np.log(2):.0f} frames", fontsize=9)
    _frame_axis(axes[0])
    axes[0].set_ylabel("localisations\nper frame")  # on one line it was cut at the top of a 2 x 2 grid
    for a, column in zip(axes[1:], columns):
        values = stats.table[column].to_numpy(float)
        a.hist(values, bins=60, range=tuple(np.percentile(values, [0, 99.5])), color=colours.second)
        a.set_xlabel(SUMMARISED[column])
        a.set_ylabel("localisations")


def save_png(figure: Figure, path: str | os.PathLike) -> None:
    """Write the figure as PNG, atomically."""
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120, facecolor=figure.get_facecolor())
