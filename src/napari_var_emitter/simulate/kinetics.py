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
    frames_per_fluorophore = _count_frames_touched(
        *_blinks(rng.uniform(0.0, 1.0, _PILOT_FLUOROPHORES), kinetics, rng)) / _PILOT_FLUOROPHORES
    lifetime = kinetics.blinks_mean * (kinetics.on_time_frames + kinetics.off_time_frames)
    warmup = 8.0 * lifetime  # start early so frame 0 is already in the steady state
    rate = emitters_per_frame / frames_per_fluorophore
    n = rng.poisson(rate * (n_frames + warmup))
    starts = np.sort(rng.uniform(-warmup, n_frames, n))
    records = _records(*_blinks(starts, kinetics, rng))
    records = records[(records[:, 1] >= 0) & (records[:, 1] < n_frames)]
    table = pd.DataFrame({
        "id": records[:, 0].astype(np.int64),
        "frame": records[:, 1].astype(np.int64),
        "on_fraction": records[:, 2],
    })
    # ids of fluorophores visible in the stack, renumbered 0..n-1
    table["id"] = np.unique(table["id"], return_inverse=True)[1]
    return table


def _blinks(starts: np.ndarray, kinetics: KineticsConfig,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The on periods of fluorophores starting at `starts`: (fluorophore, begin, end) per
    period, in frames, a fluorophore's periods one after another in time."""
    n_blinks = rng.geometric(1.0 / kinetics.blinks_mean, starts.size)
    owner = np.repeat(np.arange(starts.size), n_blinks)
    on = rng.exponential(kinetics.on_time_frames, owner.size)
    off = rng.exponential(kinetics.off_time_frames, owner.size)
    period = on + off
    elapsed = np.cumsum(period) - period  # time from the first blink, per fluorophore below
    first = np.repeat(np.cumsum(n_blinks) - n_blinks, n_blinks)
    begin = starts[owner] + elapsed - elapsed[first]
    return owner, begin, begin + on


def _records(owner: np.ndarray, begin: np.ndarray, end: np.ndarray) -> np.ndarray:
    """(R, 3) (fluorophore, frame, on_fraction) of on periods (fluorophore, begin, end)."""
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


def _count_frames_touched(owner: np.ndarray, begin: np.ndarray, end: np.ndarray) -> int:
    """len(_records(owner, begin, end)) without listing the records: each period's frames, less
    one for each period that starts in the frame where its fluorophore's previous one ended.
    (Periods of zero length, or out of time order by rounding, take the listing.)"""
    first_frame = np.floor(begin).astype(np.int64)
    last_frame = np.ceil(end).astype(np.int64) - 1
    same = owner[1:] == owner[:-1]
    if np.any(end <= begin) or np.any(same & (first_frame[1:] < last_frame[:-1])):
        return len(_records(owner, begin, end))
    shared = same & (first_frame[1:] == last_frame[:-1])
    return int((last_frame - first_frame + 1).sum() - shared.sum())
