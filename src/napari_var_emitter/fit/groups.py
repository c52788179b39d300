"""Which detections overlap, and the pixels each group is fitted on.

Detections of one frame closer than LINK_SIGMAS PSF sigmas are one group (linked in chains); a
group is fitted on the pixels within MASK_SIGMAS sigmas of any of its members, so that no
emitter outside the group reaches those pixels by more than a few per cent of its peak. A group
of more than MAX_EMITTERS is cut into cores of at most CORE_EMITTERS (halved along its wider
extent, again and again); each core is fitted together with its nearest linked neighbours (free,
up to MAX_EMITTERS in all; only the core's fits are taken) and the light of the group's other
members linked to those held in the model (`others`: refine.py fits the cores twice, the second
time beside their neighbours' first fits)."""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .joint import GroupBatch

LINK_SIGMAS = 5.0
MASK_SIGMAS = 2.5
MAX_EMITTERS = 8  # larger groups are fitted in parts of at most this many
CORE_EMITTERS = 4  # the emitters of such a part whose fits are taken
ROI_STEP_PX = 4  # ROI sides are rounded up to a multiple of this, so that few sizes share batches


def _linked(x_px: np.ndarray, y_px: np.ndarray, width_px: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) whether detections a and b (indexes, one frame) are closer than
    LINK_SIGMAS times the mean of their PSF widths."""
    return np.hypot(x_px[a, None] - x_px[None, b], y_px[a, None] - y_px[None, b]) < _reach(width_px[a, None],
                                                                                         width_px[None, b])


def _reach(width_a: np.ndarray, width_b: np.ndarray) -> np.ndarray:
    """How close (px) two detections of these PSF widths (px) must be to be linked."""
    return LINK_SIGMAS * (width_a + width_b) / 2


def _cores(members: np.ndarray, x_px: np.ndarray, y_px: np.ndarray) -> list[np.ndarray]:
    """`members` cut at the median of their wider extent, again and again, into cores of at most
    CORE_EMITTERS."""
    if len(members) <= CORE_EMITTERS:
        return [members]
    along = x_px[members] if np.ptp(x_px[members]) >= np.ptp(y_px[members]) else y_px[members]
    ordered = members[np.argsort(along, kind="stable")]
    half = len(ordered) // 2
    return _cores(ordered[:half], x_px, y_px) + _cores(ordered[half:], x_px, y_px)


def _rois(slots_GK: np.ndarray, x_px: np.ndarray, y_px: np.ndarray, width_px: np.ndarray, height: int,
          width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Square ROIs of groups of K detections each (slots_GK, indexes), covering the pixels within
    MASK_SIGMAS of every member, sides rounded up to ROI_STEP_PX, inside the frame: (G,) side,
    row and column of the corner, and whether the group fits (its members keep a margin inside
    it). An ROI larger than the frame is the frame (its margins would lie outside anyway)."""
    xs, ys = x_px[slots_GK], y_px[slots_GK]
    margin = np.ceil(MASK_SIGMAS * width_px[slots_GK].max(1)).astype(int) + 1
    lo_c, hi_c = np.floor(xs.min(1)).astype(int) - margin, np.floor(xs.max(1)).astype(int) + margin
    lo_r, hi_r = np.floor(ys.min(1)).astype(int) - margin, np.floor(ys.max(1)).astype(int) + margin
    side = -(-np.maximum(hi_c - lo_c + 1, hi_r - lo_r + 1) // ROI_STEP_PX) * ROI_STEP_PX
    size = np.minimum(side, min(height, width))
    fits = np.maximum(np.ptp(xs, 1), np.ptp(ys, 1)) + 2 <= size
    row0 = np.clip((lo_r + hi_r + 1 - size) // 2, 0, np.maximum(height - size, 0))
    col0 = np.clip((lo_c + hi_c + 1 - size) // 2, 0, np.maximum(width - size, 0))
    return size, row0, col0, fits


def _part(core: np.ndarray, group: np.ndarray, x_px: np.ndarray, y_px: np.ndarray,
          width_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(members: the core and its nearest linked neighbours, up to MAX_EMITTERS; others: the
    group's detections linked to those members, held)."""
    rest = np.setdiff1d(group, core)
    near = _linked(x_px, y_px, width_px, rest, core)
    distance = np.where(near, np.hypot(x_px[rest, None] - x_px[None, core], y_px[rest, None] - y_px[None, core]),
                        np.inf).min(1)
    halo = rest[np.argsort(distance, kind="stable")[:min(MAX_EMITTERS - len(core), int(near.any(1).sum()))]]
    members = np.r_[core, halo]
    rest = np.setdiff1d(group, members)
    return members, rest[_linked(x_px, y_px, width_px, rest, members).any(1)]


def frame_pairs(frame_N: np.ndarray, x_N: np.ndarray, y_N: np.ndarray, within: float) -> np.ndarray:
    """(P, 2) index pairs (i < j) of the points of one frame closer than `within` (the positions'
    unit, below 1e6 of it across a frame)."""
    points = np.column_stack([x_N, y_N, np.asarray(frame_N) * (10 * within + 1e6)])  # frames far apart
    return cKDTree(points).query_pairs(within, output_type="ndarray").reshape(-1, 2)


def frame_chains(frame_N: np.ndarray, x_N: np.ndarray, y_N: np.ndarray, within: float,
                 linked=None) -> np.ndarray:
    """Label (N,) of each point: connected by chains of frame_pairs closer than `within`, and
    where given, that `linked` ((P, 2) index pairs -> (P,) bool) accepts."""
    n = len(frame_N)
    if n == 0:
        return np.zeros(0, int)
    pairs = frame_pairs(frame_N, x_N, y_N, within)
    if linked is not None:
        pairs = pairs[linked(pairs)]
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def overlapping_groups(frame_N: np.ndarray, x_px_N: np.ndarray, y_px_N: np.ndarray,
                       width_px_N: np.ndarray) -> np.ndarray:
    """Group label (N,) of each detection: connected by chains of pairs in one frame closer than
    LINK_SIGMAS times the mean of their PSF widths (px)."""
    if len(frame_N) == 0:
        return np.zeros(0, int)

    def close(pairs):
        reach = _reach(width_px_N[pairs[:, 0]], width_px_N[pairs[:, 1]])
        return np.hypot(x_px_N[pairs[:, 0]] - x_px_N[pairs[:, 1]], y_px_N[pairs[:, 0]] - y_px_N[pairs[:, 1]]) < reach

    return frame_chains(frame_N, x_px_N, y_px_N, LINK_SIGMAS * float(np.max(width_px_N)), close)


@dataclasses.dataclass
class CutGroups:
    """A GroupBatch per number of emitters (whole groups, in padded ROIs) or per ROI size and
    number of emitters (parts of large groups); no padding emitters (a fit's work goes with the
    square of its parameters); members[i] (G_i, K_i): the detection index of each emitter;
    origins[i] (G_i, 2): each ROI's (row, col) corner in its frame; others[i] (G_i, M_i): the
    detections outside a part of a large group whose light is held in its model (-1 for padding;
    M_i is 0 in batches of whole groups alone); cores[i] (G_i, K_i): the slots whose fits are
    taken (every member of a whole group)."""

    batches: list[GroupBatch]
    members: list[np.ndarray]
    origins: list[np.ndarray]
    others: list[np.ndarray]
    cores: list[np.ndarray]


def cut_groups(photons_THW: np.ndarray, read_variance_HW: np.ndarray | float, frame_N: np.ndarray,
               x_px_N: np.ndarray, y_px_N: np.ndarray, photons_N: np.ndarray, width_px_N: np.ndarray,
               z_nm_N: np.ndarray | None = None) -> CutGroups:
    """ROIs of the overlapping groups of detections (frame_N indexes photons_THW; positions in
    px of the frame; width_px_N: the larger PSF sigma of each, px), batched as CutGroups says;
    groups of more than MAX_EMITTERS in parts. Groups or parts spread wider than the
    frame are left out."""
    height, width = photons_THW.shape[1:]
    labels = overlapping_groups(frame_N, x_px_N, y_px_N, width_px_N)
    order = np.argsort(labels, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(labels[order]) != 0]) if len(order) else np.zeros(0, int)
    n_members = np.diff(np.r_[starts, len(order)])
    # whole groups are batched by their number of emitters, in ROIs padded to the largest of
    # them (one fit over many ROI sizes: most batches held a few groups, and a fit's time went
    # on its steps, not its pixels); parts of large groups by ROI size too (refine.py fits them
    # size after size, each beside its neighbours' fits)
    batched = {}  # (ROI size of a part, 0 for whole groups; emitters) -> (slots (G, K), cores, held, sizes, corners)
    for k in np.unique(n_members[n_members <= MAX_EMITTERS]):
        slots = order[starts[n_members == k][:, None] + np.arange(k)]
        size, row0, col0, fits = _rois(slots, x_px_N, y_px_N, width_px_N, height, width)
        batched[(0, int(k))] = (slots[fits], np.full((fits.sum(), k), True), np.full((fits.sum(), 0), -1),
                                size[fits], np.column_stack([row0, col0])[fits])
    parts: dict[int, list] = {}  # emitters -> (members, how many of them are the core, others) of each part
    for group in (order[start:start + count] for start, count in zip(starts, n_members) if count > MAX_EMITTERS):
        for core in _cores(group, x_px_N, y_px_N):
            members, others = _part(core, group, x_px_N, y_px_N, width_px_N)
            parts.setdefault(len(members), []).append((members, len(core), others))
    for k, of_k in parts.items():
        slots = np.array([members for members, _, _ in of_k])
        size, row0, col0, fits = _rois(slots, x_px_N, y_px_N, width_px_N, height, width)
        for side in np.unique(size[fits]):
            chosen = np.flatnonzero(fits & (size == side))
            held = np.full((len(chosen), max(len(of_k[i][2]) for i in chosen)), -1)
            for row, i in enumerate(chosen):
                held[row, :len(of_k[i][2])] = of_k[i][2]
            batched[(int(side), k)] = (slots[chosen], np.arange(k) < np.array([of_k[i][1] for i in chosen])[:, None],
                                       held, size[chosen], np.column_stack([row0, col0])[chosen])
    cut = CutGroups([], [], [], [], [])
    padded = {key: int(value[3].max()) for key, value in batched.items() if len(value[0])}
    for key in sorted(padded, key=lambda key: (padded[key], key[1])):
        (slots, core, held, own, origins), size, k = batched[key], padded[key], key[1]
        frames = frame_N[slots[:, 0]]
        rows = np.minimum(origins[:, :1, None] + np.arange(size)[None, :, None], height - 1)
        cols = np.minimum(origins[:, 1:, None] + np.arange(size)[None, None, :], width - 1)
        counts = photons_THW[frames[:, None, None], rows, cols]
        variance = np.broadcast_to(np.asarray(read_variance_HW, np.float64), (height, width))[rows, cols]
        xy = np.stack([x_px_N[slots] - origins[:, 1:], y_px_N[slots] - origins[:, :1]], axis=-1)
        centres = np.arange(size) + 0.5
        dist2 = ((centres[None, None, None, :] - xy[..., 0, None, None]) ** 2
                 + (centres[None, None, :, None] - xy[..., 1, None, None]) ** 2)  # (G, K, R, R)
        near = dist2 <= (MASK_SIGMAS * width_px_N[slots][..., None, None] + 0.5) ** 2
        inside = (np.arange(size)[None, :, None] < own[:, None, None]) & (np.arange(size) < own[:, None, None])
        cut.batches.append(GroupBatch(counts.astype(np.float64), np.asarray(variance, np.float64),
                                      (near.any(1) & inside).astype(np.float64), xy, photons_N[slots],
                                      None if z_nm_N is None else z_nm_N[slots], size_G=own))
        cut.members.append(slots)
        cut.origins.append(origins)
        cut.others.append(held)
        cut.cores.append(core)
    return cut

