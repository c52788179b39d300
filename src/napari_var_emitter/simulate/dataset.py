"""A simulated dataset on disk, in the seeds' layout:

  OUT/batch_status.json                      config, and each sample's status, seed, parameters
  OUT/sample_160_000/sample_160_000.ome.tiff camera frames (uint16 ADU)
  OUT/sample_160_000/emitters.h5             ground truth

Samples already "done" with the same config are kept, so an interrupted run resumes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io.atomic import write_text_atomic
from ..io.emitters_h5 import write_emitters_h5
from ..io.tiff import write_ome_tiff
from .config import SimulationConfig, draw_parameters
from .stack import simulate_stack

STATUS_FILE = "batch_status.json"


def sample_name(config: SimulationConfig, index: int) -> str:
    height, width = config.frame_size
    size = str(height) if height == width else f"{height}x{width}"
    return f"sample_{size}_{index:03d}"


def simulate_dataset(
    raw_config: Mapping[str, Any],
    out_dir: str | Path,
    n_samples: int,
    seed: int,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Write `n_samples` samples under `out_dir`; returns the batch status (also on disk)."""
    out_dir = Path(out_dir)
    status_path = out_dir / STATUS_FILE
    status = {"config": dict(raw_config), "seed": seed, "n_samples": n_samples, "samples": []}
    if status_path.exists() and not overwrite:
        previous = json.loads(status_path.read_text())
        if {k: previous.get(k) for k in ("config", "seed")} != {"config": status["config"], "seed": seed}:
            raise InputError(f"{out_dir} holds a dataset made with another config or seed; "
                             "choose another folder or pass --overwrite")
        status["samples"] = previous["samples"][:n_samples]
    done = {s["name"] for s in status["samples"] if s["status"] == "done"}
    seeds = np.random.SeedSequence(seed).generate_state(n_samples)
    for index in range(n_samples):
        sample_seed = int(seeds[index])
        rng = np.random.default_rng(sample_seed)
        config = SimulationConfig.from_dict(draw_parameters(raw_config, rng))
        name = sample_name(config, index)
        if name in done and (out_dir / name / "emitters.h5").exists():
            continue
        entry = {"name": name, "status": "running", "seed": sample_seed, "parameters": config.to_dict()}
        _put(status, entry)
        write_text_atomic(status_path, json.dumps(status, indent=1))
        started = time.perf_counter()
        try:
            frames, truth = simulate_stack(config, rng)
            write_ome_tiff(out_dir / name / f"{name}.ome.tiff", frames, config.camera)
            write_emitters_h5(out_dir / name / "emitters.h5", truth)
        except Exception as exc:
            entry.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            write_text_atomic(status_path, json.dumps(status, indent=1))
            raise
        per_frame = truth.emitters.groupby("frame").size().reindex(range(config.n_frames), fill_value=0)
        entry.update(
            status="done",
            n_localizations=len(truth.emitters),
            measured_density_per_um2=float(per_frame.mean() / config.field_um2),
            wall_s=round(time.perf_counter() - started, 3),
        )
        write_text_atomic(status_path, json.dumps(status, indent=1))
        log(f"{name}: {config.n_frames} frames, {len(truth.emitters)} emitters, "
            f"{entry['measured_density_per_um2']:.3f}/µm² measured, {entry['wall_s']} s")
    return status


def _put(status: dict[str, Any], entry: dict[str, Any]) -> None:
    """Insert or replace the entry of that sample name."""
    samples = [s for s in status["samples"] if s["name"] != entry["name"]]
    status["samples"] = sorted(samples + [entry], key=lambda s: s["name"])
