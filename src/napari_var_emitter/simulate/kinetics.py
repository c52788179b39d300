"""Blinking fluorophores: which are on in which frame, and for what fraction of it.

Fluorophores switch on as a Poisson process in continuous time (unit = one frame), then
alternate exponential on and off periods; after a geometric number of on periods they
bleach. A period that starts or ends inside a frame lights that frame only partly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .config import KineticsConfig

_PILOT_FLUOROPHORES = 20000


def blink_records(
    n_frames: int, emitters_per_frame: float, kinetics: KineticsConfig, rng: np.random.Generator
) -> pd.DataFrame:
    """Records (id, frame, on_fraction), one per fluorophore and frame it is on in.

    The activation rate is set so that on average `emitters_per_frame` fluorophores are
    (at least partly) on in each frame; ids are 0..n-1 in order of activation.
    """
    frames_per_fluorophore = _frames_touched(
        rng.uniform(0.0, 1.0, _PILOT_FLUOROPHORES), kinetics, rng
    ).shape[0] / _PILOT_FLUOROPHORES
    lifetime = kinetics.blinks_mean * (kinetics.on_time_frames + kinetics.off_time_frames)
    warmup = 8.0 * lifetime  # start early so frame 0 is already in the steady state
    rate = emitters_per_frame / frames_per_fluorophore
    n = rng.poisson(rate * (n_frames + warmup))
    starts = np.sort(rng.uniform(-warmup, n_frames, n))
    records = _frames_touched(starts, kinetics, rng)
    records = records[(records[:, 1] >= 0) & (records[:, 1] < n_frames)]
    table = pd.DataFrame({
        "id": records[:, 0].astype(np.int64),
        "frame": records[:, 1].astype(np.int64),
        "on_fraction": records[:, 2],
    })
    # ids of fluorophores visible in the stack, renumbered 0..n-1
    table["id"] = np.unique(table["id"], return_inverse=True)[1]
    return table


def _frames_touched(starts: np.ndarray, kinetics: KineticsConfig, rng: np.random.Generator) -> np.ndarray:
    """(R, 3) array of (fluorophore, frame, on_fraction) for fluorophores starting at `starts`."""
    n_blinks = rng.geometric(1.0 / kinetics.blinks_mean, starts.size)
    owner = np.repeat(np.arange(starts.size), n_blinks)
    on = rng.exponential(kinetics.on_time_frames, owner.size)
    off = rng.exponential(kinetics.off_time_frames, owner.size)
    period = on + off
    elapsed = np.cumsum(period) - period  # time from the first blink, per fluorophore below
    first = np.repeat(np.cumsum(n_blinks) - n_blinks, n_blinks)
    begin = starts[owner] + elapsed - elapsed[first]
    end = begin + on
    first_frame = np.floor(begin).astype(np.int64)
    count = np.ceil(end).astype(np.int64) - first_frame
    blink = np.repeat(np.arange(owner.size), count)
    frame = first_frame[blink] + np.arange(blink.size) - np.repeat(np.cumsum(count) - count, count)
    fraction = np.minimum(end[blink], frame + 1) - np.maximum(begin[blink], frame)
    # one fluorophore may blink twice within one frame: add those fractions
    key, index = np.unique(owner[blink] * (2**31) + (frame + 2**30), return_inverse=True)
    summed = np.bincount(index, weights=fraction)
    records = np.column_stack([key // 2**31, key % 2**31 - 2**30, summed])
    return records[records[:, 2] > 0]
