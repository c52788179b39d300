"""Localisation tables without images, for checking the analysis steps (drift, merging,
precision, resolution): the simulator's blinking fluorophores on its structures, each seen in
every frame it is on with Gaussian error of its Cramér–Rao bound, plus an optional stage drift.

A blink event is one fluorophore's run of consecutive frames (gaps up to `max_gap` frames
bridged, as `analysis.merge` does), numbered in `event`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..evaluate.crlb import crlb_nm
from .config import SimulationConfig
from .stack import fluorophore_brightness
from .structures import blinking_fluorophores

MIN_PHOTONS = 100.0  # a blink that lights a frame with fewer photons is not detected


def simulate_localizations(config: SimulationConfig, rng: np.random.Generator,
                           drift_nm_T2: np.ndarray | None = None,
                           precision_nm: float | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(localisations, truth) for `config` (frame size, frames, density, photons, background,
    PSF σ, structure, kinetics, pixel size). Localisations have our table's columns
    (uncertainty_nm = the bound, or `precision_nm` for every one) and are displaced by
    `drift_nm_T2[frame]` (dx, dy) when given. truth has one row per localisation: the
    fluorophore's position (x_nm, y_nm), its `id` and the blink `event` (gaps of 0 frames)."""
    px = config.camera.pixel_size_nm
    records, x_nm, y_nm = blinking_fluorophores(config, rng)
    n = len(x_nm)
    brightness = fluorophore_brightness(config, n, rng)
    fid = records["id"].to_numpy()
    photons = brightness[fid] * records["on_fraction"].to_numpy()
    truth = pd.DataFrame({"frame": records["frame"].to_numpy(), "x_nm": x_nm[fid], "y_nm": y_nm[fid], "id": fid,
                          "photons": photons})
    truth = truth[truth["photons"] >= MIN_PHOTONS].sort_values(["frame", "id"], ignore_index=True)
    truth["event"] = blink_events(truth, max_gap=0)
    uncertainty = (np.full(len(truth), float(precision_nm)) if precision_nm is not None
                   else crlb_nm(truth["photons"].to_numpy(), config.background_photons, config.psf.sigma_nm, px))
    table = pd.DataFrame({
        "frame": truth["frame"].to_numpy(),
        "x_nm": truth["x_nm"] + rng.normal(0.0, 1.0, len(truth)) * uncertainty,
        "y_nm": truth["y_nm"] + rng.normal(0.0, 1.0, len(truth)) * uncertainty,
        "photons": truth["photons"].to_numpy(),
        "background": np.full(len(truth), float(config.background_photons)),
        "uncertainty_nm": uncertainty,
    })
    if drift_nm_T2 is not None:
        table["x_nm"] += drift_nm_T2[table["frame"], 0]
        table["y_nm"] += drift_nm_T2[table["frame"], 1]
    return table, truth


def blink_events(truth: pd.DataFrame, max_gap: int) -> np.ndarray:
    """Event number per row of a truth table (frame, id): a fluorophore's rows belong to one
    event while each follows the previous within max_gap + 1 frames."""
    order = np.lexsort((truth["frame"].to_numpy(), truth["id"].to_numpy()))
    fid, frame = truth["id"].to_numpy()[order], truth["frame"].to_numpy()[order]
    new = np.ones(len(order), bool)
    new[1:] = (fid[1:] != fid[:-1]) | (frame[1:] - frame[:-1] > max_gap + 1)
    events = np.empty(len(order), np.int64)
    events[order] = np.cumsum(new) - 1
    return events


def drift_trajectory(n_frames: int, rng: np.random.Generator, total_nm: float = 300.0,
                     walk_nm: float = 30.0, smooth_frames: float = 300.0) -> np.ndarray:
    """(n_frames, 2) stage drift (dx, dy) in nm, 0 at frame 0: a straight line that reaches
    `total_nm` in a random direction by the last frame plus a slow random walk whose
    smoothed excursions are ~`walk_nm`."""
    from scipy.ndimage import gaussian_filter1d

    angle = rng.uniform(0, 2 * np.pi)
    line = np.linspace(0, 1, n_frames)[:, None] * total_nm * np.array([np.cos(angle), np.sin(angle)])
    walk = gaussian_filter1d(np.cumsum(rng.normal(0, 1, (n_frames, 2)), axis=0), smooth_frames, axis=0,
                             mode="nearest")
    walk *= walk_nm / max(float(np.std(walk - walk.mean(0))), 1e-9)
    drift = line + walk
    return drift - drift[0]
