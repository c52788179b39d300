"""Fluorophore positions: uniform, on worm-like filaments, on rings, line pairs, in clusters or with
close partners (nm, in the frame)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .config import SimulationConfig, StructureConfig
from .kinetics import blink_records

_STEP_NM = 20.0


def blinking_fluorophores(config: SimulationConfig, rng: np.random.Generator
                          ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """config's fluorophores: blink records (id, frame, on_fraction; kinetics.blink_records) and
    positions x_nm, y_nm (N,) per id, on config.structure. "close_pairs" adds each partner as a
    fluorophore of its own that blinks with its mate (structure.partner_fraction of the mates)."""
    structure, px = config.structure, config.camera.pixel_size_nm
    field_nm = (config.frame_size[0] * px, config.frame_size[1] * px)
    pairs = structure.kind == "close_pairs"
    per_frame = config.density_per_um2 * config.field_um2 / (1 + structure.partner_fraction if pairs else 1)
    records = blink_records(config.n_frames, per_frame, config.kinetics, rng)
    n = int(records["id"].max()) + 1 if len(records) else 0
    x_nm, y_nm = sample_positions(structure, n, field_nm, rng)
    if pairs:
        records, x_nm, y_nm = _with_partners(structure, records, x_nm, y_nm, field_nm, rng)
    return records, x_nm, y_nm


def _with_partners(structure: StructureConfig, records: pd.DataFrame, x_nm: np.ndarray, y_nm: np.ndarray,
                   field_nm: tuple[float, float], rng: np.random.Generator):
    """(records, x_nm, y_nm) with a partner for a partner_fraction of the fluorophores, ids n, n + 1, ...:
    partner_distance_nm from its mate at a random angle, on in the mate's frames; a partner that
    would lie outside the field is left out."""
    n = len(x_nm)
    mates = np.flatnonzero(rng.uniform(size=n) < structure.partner_fraction)
    distance = rng.uniform(*structure.partner_distance_nm, len(mates))
    angle = rng.uniform(0.0, 2 * np.pi, len(mates))
    partner_x, partner_y = x_nm[mates] + distance * np.cos(angle), y_nm[mates] + distance * np.sin(angle)
    inside = (partner_x >= 0) & (partner_x < field_nm[1]) & (partner_y >= 0) & (partner_y < field_nm[0])
    mates, partner_x, partner_y = mates[inside], partner_x[inside], partner_y[inside]
    partner_id = np.full(n, -1)
    partner_id[mates] = n + np.arange(len(mates))
    copies = records[partner_id[records["id"].to_numpy()] >= 0]
    copies = copies.assign(id=partner_id[copies["id"].to_numpy()])
    return (pd.concat([records, copies], ignore_index=True), np.concatenate([x_nm, partner_x]),
            np.concatenate([y_nm, partner_y]))


def sample_positions(
    structure: StructureConfig, n: int, field_nm: tuple[float, float], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """n positions (x_nm, y_nm) inside a field of (height_nm, width_nm)."""
    height, width = field_nm
    if structure.kind in ("uniform", "close_pairs"):  # a close pair's partner: blinking_fluorophores
        return rng.uniform(0, width, n), rng.uniform(0, height, n)
    sample = {"filaments": _on_filaments, "rings": _on_rings, "line_pairs": _on_line_pairs,
              "clusters": _in_clusters}[structure.kind]
    points = sample(structure, field_nm, rng)  # (M, 2) points densely along the structure
    x, y = np.empty(0), np.empty(0)
    while x.size < n:  # labels jitter off the structure; keep those inside the field
        chosen = points[rng.integers(0, len(points), 2 * (n - x.size) + 16)]
        jitter = rng.normal(0.0, structure.label_sd_nm, chosen.shape)
        cx, cy = (chosen + jitter).T
        inside = (cx >= 0) & (cx < width) & (cy >= 0) & (cy < height)
        x, y = np.concatenate([x, cx[inside]]), np.concatenate([y, cy[inside]])
    return x[:n], y[:n]


def _on_filaments(structure: StructureConfig, field_nm, rng) -> np.ndarray:
    """Worm-like chains: heading changes by N(0, step / persistence length) per step."""
    height, width = field_nm
    n_steps = max(2, int(structure.filament_length_nm / _STEP_NM))
    n_filaments = max(1, int(structure.n_filaments))
    turn = rng.normal(0, np.sqrt(_STEP_NM / structure.persistence_length_nm), (n_filaments, n_steps))
    heading = rng.uniform(0, 2 * np.pi, (n_filaments, 1)) + np.cumsum(turn, axis=1)
    start = rng.uniform((0, 0), (width, height), (n_filaments, 2))
    x = start[:, :1] + np.cumsum(_STEP_NM * np.cos(heading), axis=1)
    y = start[:, 1:] + np.cumsum(_STEP_NM * np.sin(heading), axis=1)
    points = np.column_stack([x.ravel(), y.ravel()])
    inside = (points[:, 0] >= 0) & (points[:, 0] < width) & (points[:, 1] >= 0) & (points[:, 1] < height)
    return points[inside] if inside.any() else points


def _on_rings(structure: StructureConfig, field_nm, rng) -> np.ndarray:
    """Circles of radius drawn from ring_radius_nm, sampled every ~STEP along the rim."""
    height, width = field_nm
    n_rings = max(1, int(structure.n_rings))
    radius = rng.uniform(*structure.ring_radius_nm, n_rings)
    centre = rng.uniform(radius[:, None], np.array([width, height]) - radius[:, None])
    angle = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    x = centre[:, :1] + radius[:, None] * np.cos(angle)
    y = centre[:, 1:] + radius[:, None] * np.sin(angle)
    return np.column_stack([x.ravel(), y.ravel()])


def _on_line_pairs(structure: StructureConfig, field_nm, rng) -> np.ndarray:
    """Straight pairs of parallel lines pair_spacing_nm apart, at random angles, sampled every ~STEP."""
    height, width = field_nm
    n_pairs = max(1, int(structure.n_filaments))
    centre = rng.uniform((0, 0), (width, height), (n_pairs, 2))
    angle = rng.uniform(0, np.pi, n_pairs)
    along = np.array([np.cos(angle), np.sin(angle)]).T  # (P, 2)
    across = np.array([-np.sin(angle), np.cos(angle)]).T
    t = np.arange(-structure.filament_length_nm / 2, structure.filament_length_nm / 2, _STEP_NM / 4)
    points = [centre[:, None] + t[None, :, None] * along[:, None] + side * structure.pair_spacing_nm / 2
              * across[:, None] for side in (-1, 1)]
    points = np.concatenate(points, axis=1).reshape(-1, 2)
    inside = (points[:, 0] >= 0) & (points[:, 0] < width) & (points[:, 1] >= 0) & (points[:, 1] < height)
    return points[inside] if inside.any() else points


def _in_clusters(structure: StructureConfig, field_nm, rng) -> np.ndarray:
    """n_clusters centres uniform in the field, 64 points around each from N(centre, cluster_sd_nm)."""
    height, width = field_nm
    centre = rng.uniform((0, 0), (width, height), (max(1, int(structure.n_clusters)), 1, 2))
    return (centre + rng.normal(0.0, structure.cluster_sd_nm, (len(centre), 64, 2))).reshape(-1, 2)
