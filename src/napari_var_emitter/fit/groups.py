"""Which detections overlap, and the pixels each group is fitted on.

Detections of one frame closer than LINK_SIGMAS PSF sigmas are one group (linked in chains); a
group is fitted on the pixels within MASK_SIGMAS sigmas of any of its members, so that no
emitter outside the group reaches those pixels by more than a few per cent of its peak."""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .joint import GroupBatch

LINK_SIGMAS = 5.0
MASK_SIGMAS = 2.5
MAX_EMITTERS = 8  # larger groups keep the network's estimates
ROI_STEP_PX = 4  # ROI sides are rounded up to a multiple of this, so that few sizes share batches
ROI_PX = 9  # side of the windows of isolated spots (PSF sigma estimation)


def overlapping_groups(frame_N: np.ndarray, x_px_N: np.ndarray, y_px_N: np.ndarray,
                       width_px_N: np.ndarray) -> np.ndarray:
    """Group label (N,) of each detection: connected by chains of pairs in one frame closer than
    LINK_SIGMAS times the mean of their PSF widths (px)."""
    n = len(frame_N)
    if n == 0:
        return np.zeros(0, int)
    widest = LINK_SIGMAS * float(np.max(width_px_N))
    points = np.column_stack([x_px_N, y_px_N, frame_N * (10 * widest + 1e6)])  # frames far apart
    pairs = cKDTree(points).query_pairs(widest, output_type="ndarray").reshape(-1, 2)
    reach = LINK_SIGMAS * (width_px_N[pairs[:, 0]] + width_px_N[pairs[:, 1]]) / 2
    pairs = pairs[np.hypot(*(points[pairs[:, 0], :2] - points[pairs[:, 1], :2]).T) < reach]
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


@dataclasses.dataclass
class CutGroups:
    """A GroupBatch per ROI size; members[i] (G_i, K_i): the detection index of each emitter slot
    (-1 for padding); origins[i] (G_i, 2): each ROI's (row, col) corner in its frame."""

    batches: list[GroupBatch]
    members: list[np.ndarray]
    origins: list[np.ndarray]


def cut_groups(photons_THW: np.ndarray, read_variance_HW: np.ndarray | float, frame_N: np.ndarray,
               x_px_N: np.ndarray, y_px_N: np.ndarray, photons_N: np.ndarray, width_px_N: np.ndarray,
               z_nm_N: np.ndarray | None = None) -> CutGroups:
    """ROIs of the overlapping groups of detections (frame_N indexes photons_THW; positions in
    px of the frame; width_px_N: the larger PSF sigma of each, px), batched by ROI size. Groups
    of more than MAX_EMITTERS, or spread wider than the frame, are left out."""
    height, width = photons_THW.shape[1:]
    labels = overlapping_groups(frame_N, x_px_N, y_px_N, width_px_N)
    order = np.argsort(labels, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(labels[order]) != 0])
    by_size: dict[int, list] = {}
    for members in np.split(order, starts[1:]):
        if len(members) > MAX_EMITTERS:
            continue
        margin = int(np.ceil(MASK_SIGMAS * width_px_N[members].max())) + 1
        lo_c, hi_c = int(np.floor(x_px_N[members].min())) - margin, int(np.floor(x_px_N[members].max())) + margin
        lo_r, hi_r = int(np.floor(y_px_N[members].min())) - margin, int(np.floor(y_px_N[members].max())) + margin
        # an ROI larger than the frame is the frame (its margins would lie outside anyway), as
        # long as the members keep a margin inside it
        size = min(-(-max(hi_c - lo_c + 1, hi_r - lo_r + 1) // ROI_STEP_PX) * ROI_STEP_PX, height, width)
        span = max(np.ptp(x_px_N[members]), np.ptp(y_px_N[members]))
        if span + 2 > size:
            continue
        row0 = int(np.clip((lo_r + hi_r + 1 - size) // 2, 0, height - size))
        col0 = int(np.clip((lo_c + hi_c + 1 - size) // 2, 0, width - size))
        by_size.setdefault(size, []).append((members, row0, col0))
    cut = CutGroups([], [], [])
    for size, groups in sorted(by_size.items()):
        k = max(len(m) for m, _, _ in groups)
        slots = np.full((len(groups), k), -1)
        origins = np.array([(r, c) for _, r, c in groups])
        for g, (members, _, _) in enumerate(groups):
            slots[g, :len(members)] = members
        frames = frame_N[slots[:, 0]]
        rows = origins[:, :1, None] + np.arange(size)[None, :, None]
        cols = origins[:, 1:, None] + np.arange(size)[None, None, :]
        counts = photons_THW[frames[:, None, None], rows, cols]
        variance = np.broadcast_to(np.asarray(read_variance_HW, np.float64), (height, width))[rows, cols]
        active = slots >= 0
        safe = np.where(active, slots, slots[:, :1])
        xy = np.stack([x_px_N[safe] - origins[:, 1:], y_px_N[safe] - origins[:, :1]], axis=-1)
        centres = np.arange(size) + 0.5
        dist2 = ((centres[None, None, None, :] - xy[..., 0, None, None]) ** 2
                 + (centres[None, None, :, None] - xy[..., 1, None, None]) ** 2)  # (G, K, R, R)
        near = (dist2 <= (MASK_SIGMAS * width_px_N[safe][..., None, None] + 0.5) ** 2) & active[..., None, None]
        cut.batches.append(GroupBatch(counts.astype(np.float64), np.asarray(variance, np.float64),
                                      near.any(1).astype(np.float64), xy, photons_N[safe], active,
                                      None if z_nm_N is None else z_nm_N[safe]))
        cut.members.append(slots)
        cut.origins.append(origins)
    return cut


def isolated_rois(photons: np.ndarray, table, confident, px: float) -> np.ndarray:
    """ROI_PX x ROI_PX windows centred on confident detections with no other detection within
    ROI_PX pixels and the window inside the frame."""
    half = ROI_PX // 2
    _, height, width = photons.shape
    rois = []
    for frame, spots in confident.groupby("frame"):
        others = table.loc[table["frame"] == frame, ["x_nm", "y_nm"]].to_numpy() / px
        for x, y in spots[["x_nm", "y_nm"]].to_numpy() / px:
            near = np.hypot(others[:, 0] - x, others[:, 1] - y)
            row, col = int(y), int(x)
            if (near < ROI_PX).sum() == 1 and half <= row < height - half and half <= col < width - half:
                rois.append(photons[frame, row - half:row + half + 1, col - half:col + half + 1])
    return np.asarray(rois).reshape(-1, ROI_PX, ROI_PX)
