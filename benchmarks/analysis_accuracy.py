"""Accuracy and speed of the analysis steps on tables from the simulator's blinking
fluorophores (simulate/localizations.py), on seeds no default was chosen on (201-): residual
drift after RCC, merging purity/completeness and merged RMSE against 1/sqrt(n), NeNA against
the known precision, FRC on line pairs of known spacing.

Run:  .venv/bin/python benchmarks/analysis_accuracy.py      (prints figures; asserts nothing)
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from napari_var_emitter.analysis.drift import rcc_drift
from napari_var_emitter.analysis.merge import link_blinks, merge_groups
from napari_var_emitter.analysis.render import field_of, render
from napari_var_emitter.analysis.resolution import frc, nena
from napari_var_emitter.simulate.config import SimulationConfig, StructureConfig
from napari_var_emitter.simulate.localizations import blink_events, drift_trajectory, simulate_localizations


def rms(error_T2: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum(error_T2**2, axis=1))))


def drift_figures() -> None:
    config = SimulationConfig(frame_size=(64, 64), n_frames=10_000, density_per_um2=0.5,
                              structure=StructureConfig(kind="filaments"))
    print("RCC, filaments 0.5 /µm², 10,000 frames, 64x64 px of 100 nm, 300 nm line + random walk:")
    for seed in (201, 202, 203):
        rng = np.random.default_rng(seed)
        true_T2 = drift_trajectory(config.n_frames, rng, total_nm=300.0)
        locs, _ = simulate_localizations(config, rng, true_T2)
        start = time.perf_counter()
        estimate = rcc_drift(locs)
        seconds = time.perf_counter() - start
        residual = estimate.drift_nm_T2 - true_T2
        still = rcc_drift(simulate_localizations(config, np.random.default_rng(seed + 50))[0]).drift_nm_T2
        print(f"  seed {seed}: {len(locs):,} locs, drift span {np.hypot(*(true_T2 - true_T2[0]).T).max():.0f} nm, "
              f"residual {rms(residual - residual.mean(0)):.2f} nm RMS, {seconds:.2f} s; "
              f"no-drift table moved max {np.hypot(*still.T).max():.2f} nm")


def merge_figures() -> None:
    config = SimulationConfig(frame_size=(128, 128), n_frames=3000, density_per_um2=0.1)
    print("Merging at 0.1 /µm² (3,000 frames, 128x128 px), default radius 3.5 σ, max gap 1:")
    for seed in (211, 212):
        for precision in (None, 10.0):
            locs, truth = simulate_localizations(config, np.random.default_rng(seed), precision_nm=precision)
            start = time.perf_counter()
            group = link_blinks(locs)
            seconds = time.perf_counter() - start
            pairs = pd.DataFrame({"group": group, "event": blink_events(truth, 1)})
            purity = (pairs.groupby("group")["event"].nunique() == 1).mean()
            completeness = (pairs.groupby("event")["group"].nunique() == 1).mean()
            merged = merge_groups(locs, group)
            first = pd.Series(locs["frame"].to_numpy()).groupby(group).min().sort_values(kind="stable").index
            count = np.bincount(group)
            error = np.hypot(merged["x_nm"] - (np.bincount(group, truth["x_nm"]) / count)[first],
                             merged["y_nm"] - (np.bincount(group, truth["y_nm"]) / count)[first]) / np.sqrt(2)
            rmse = {n: np.sqrt(np.mean(error[merged["n_merged"] == n] ** 2)) for n in range(1, 6)}
            label = "CRLB precision" if precision is None else f"{precision:g} nm for all"
            ratios = " ".join(f"n={n}: {rmse[n] * np.sqrt(n) / rmse[1]:.2f}" for n in range(2, 6))
            stated_nm = {n: np.sqrt(np.mean(merged.loc[merged["n_merged"] == n, "uncertainty_nm"] ** 2))
                         for n in range(2, 6)}
            stated = " ".join(f"{rmse[n] / stated_nm[n]:.2f}" for n in range(2, 6))
            print(f"  seed {seed} ({label}): {len(locs):,} locs -> {len(merged):,}, purity {100 * purity:.2f} %, "
                  f"completeness {100 * completeness:.2f} %, {seconds:.2f} s\n"
                  f"    RMSE_n·sqrt(n)/RMSE_1: {ratios}; RMSE_n / stated uncertainty (n=2..5): {stated}")


def resolution_figures() -> None:
    config = SimulationConfig(frame_size=(128, 128), n_frames=2000, density_per_um2=0.5,
                              structure=StructureConfig(kind="filaments"))
    print("NeNA, filaments 0.5 /µm², 2,000 frames:")
    for seed, precision in ((221, 5.0), (222, 10.0), (223, 20.0), (224, None)):
        locs, truth = simulate_localizations(config, np.random.default_rng(seed), precision_nm=precision)
        known = np.sqrt(np.mean(np.r_[locs.x_nm - truth.x_nm, locs.y_nm - truth.y_nm] ** 2))
        start = time.perf_counter()
        value = nena(locs).precision_nm
        label = "CRLB per localisation" if precision is None else f"{precision:g} nm"
        print(f"  precision {label}: NeNA {value:.2f} nm, true RMS error {known:.2f} nm, median stated "
              f"{locs['uncertainty_nm'].median():.2f} nm ({time.perf_counter() - start:.2f} s)")
    print("FRC, line pairs 60 nm apart (6 pairs of 1.5 µm, 2,000 frames), by localisation precision σ:")
    for ratio in (0.2, 0.3, 0.4, 0.5, 0.6, 0.8):
        lines = SimulationConfig(frame_size=(32, 32), n_frames=2000, density_per_um2=2.0,
                                 structure=StructureConfig(kind="line_pairs", n_filaments=6, filament_length_nm=1500,
                                                           label_sd_nm=0.0, pair_spacing_nm=60.0))
        locs, _ = simulate_localizations(lines, np.random.default_rng(230), precision_nm=60.0 * ratio)
        start = time.perf_counter()
        curve = frc(locs, pixel_nm=2.0)
        print(f"  σ = {60 * ratio:4.1f} nm (60 nm {'>' if 60 > 2 * 60 * ratio else '<='} 2σ): FRC resolution "
              f"{curve.resolution_nm:6.1f} nm ({time.perf_counter() - start:.2f} s)")


def render_speed() -> None:
    config = SimulationConfig(frame_size=(256, 256), n_frames=2000, density_per_um2=0.5,
                              structure=StructureConfig(kind="filaments"))
    locs, _ = simulate_localizations(config, np.random.default_rng(240))
    start = time.perf_counter()
    image = render(locs, field_of(locs), 10.0)
    print(f"Render: {len(locs):,} locs, each its own σ, {image.shape[1]}x{image.shape[0]} px of 10 nm in "
          f"{time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    drift_figures()
    merge_figures()
    resolution_figures()
    render_speed()
