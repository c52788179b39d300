"""The stage after the network: every detection refined by a maximum-likelihood fit, jointly
with the detections whose spots overlap its own (groups.py, joint.py), under the camera's noise
and the PSF of the data (the Gaussian of a sigma estimated from the data in 2-D, the astigmatic
calibration in 3-D); groups too large for one joint fit in parts, each beside the light of its
neighbours (groups.py). A fit that does not converge, or moves more than
MAX_MOVE_PX from the network's position, keeps the network's estimate. A detection whose fit
leaves light unexplained is tried as two emitters the network merged (split.py), whose halves
may each lie up to split.MOMENT_SIGMAS PSF sigmas from the network's position in 3-D. The `fitted`
column says which estimate each row carries: 1 the fit (in 3-D, and behind a network that saw the
frames beside, weighed with the network's: _weigh_with_network), 0 the network's, 2 the fit of an
emitter split off a detection (a row the network did not report)."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ..io.camera import Camera
from .background_test import discoveries, seen_in_own_frame, significance
from .groups import cut_groups
from .joint import GroupBatch, SpotModel, fit_groups, misfit_scale
from .split import MOMENT_SIGMAS, split_merged

MAX_MOVE_PX = 1.5
NETWORK, FITTED, SPLIT = 0, 1, 2  # the `fitted` column: the network's values, the fit's, a split-off emitter's
# fitted rows whose network uncertainty over fit bound exceeds this times its median state the
# network's uncertainty (_confused; chosen on validation stacks, seeds 12,000,000+, 0.1-4 /µm²)
CONFUSED_RATIO = 1.2
# the test against background only keeps the discoveries at this false-discovery rate per frame
# (background_test; chosen on validation stacks, seeds 12,000,000+ and 12,100,000+: precision
# 0.994-0.998 over 4-10x structured backgrounds at 0.1 /µm² and 0.988-0.993 at 1 /µm², against
# 0.988-0.994 and 0.979-0.987 at 1e-4, Jaccard within 0.2 points; 0.03-0.06 without the test;
# on flat ones, where nearly every detection is a clear spot, every one is kept)
PHANTOM_FDR = 1e-5
# numpy's BLAS runs the stage's array work (the matrix products around the compiled fits, their
# LAPACK fallback) on one thread: its matrix products are small, and the threads it left spinning after
# each took the CPU from the network (2 cores, 160x160 frames, when the fits were numpy's: the
# network's 34 -> 18 ms per frame, the refinement as fast)
one_blas_thread = threadpool_limits.wrap(limits=1, user_api="blas")
# behind a network that saw the frames beside, the share of the fit-network disagreement added to
# the weighed position's uncertainty (_weigh_with_network). Chosen on validation stacks (seeds
# 12,001,100-113 and 12,001,300-313, 0.1-2 /µm², sCMOS and EMCCD), the 20,000-step model of
# configs/cpu_2d_context.json: error / uncertainty sd per axis 0.86-1.13 over the 16 stacks (0.6:
# 0.89-1.17; 0.8: 0.83-1.10; the weighed mean's own uncertainty alone 1.05-1.38; the fit's bound
# widened by the whole disagreement, as in 3-D, 0.60-0.76 at 16,100 steps)
INHERITED_DISAGREEMENT = 0.7
# the same share for z behind the 3-D window model (the bundled one, configs/cpu_3d_wide*.json): 0.7
# there overstated z's uncertainty (error / uncertainty sd 0.79 / 0.83 / 0.94 / 1.02 at 0.1 / 0.5 / 1 /
# 2 /µm², 3-D validation stacks, seeds 12,200,529-532); the share that keeps the four nearest 1 (the
# largest deviation: 0.7 0.21, 0.6 0.18, 0.5 0.15, 0.45 0.14, 0.42 0.129, 0.4 0.131, 0.35 0.16, 0.3
# 0.18), rounded: 0.88 / 0.92 / 1.03 / 1.13
AXIAL_INHERITED_DISAGREEMENT = 0.4
# a row that keeps the network's estimate because its fit did not hold (a crowded or odd spot) states
# the network's lateral uncertainty times this: the network's own stated too little there (3-D validation
# stacks, seeds 12,200,529-532: error / uncertainty sd of those rows 1.03 / 1.11, 1.38 / 1.36 and 1.34 /
# 1.37 at 0.5 / 1 / 2 /µm², 1.34 pooled; in z 0.89-0.95, left as it is; on 2-D validation stacks, seeds
# 12,001,810-813, 0.3-1.3 % of the rows, 1.6-3.2)
FAILED_FIT_WIDENING = 1.35
PART_ROUNDS = 2  # the parts of a large group are fitted twice: the second time beside their neighbours' fits


def _holds(fit, slots: np.ndarray, origins: np.ndarray, x_px: np.ndarray, y_px: np.ndarray, size_G: np.ndarray,
           reach_px: np.ndarray | float = MAX_MOVE_PX) -> np.ndarray:
    """(G, K) the fits that hold: converged, photons > 0, finite bounds, within reach_px (G, K)
    of the network's position of the row in `slots`, inside their ROI of
    size_G (G,) px (ROIs lie inside the frame), and stating a position to better than MAX_MOVE_PX
    (a fit that does not pin the spot down says less than the network: on real frames some
    stated several µm)."""
    x, y = fit.x_px + origins[:, 1:], fit.y_px + origins[:, :1]
    moved = np.hypot(x - x_px[slots], y - y_px[slots])
    widest = np.maximum(fit.crlb_x_px, fit.crlb_y_px) * misfit_scale(fit.misfit)  # as _values states it
    size = size_G[:, None]
    inside = (fit.x_px >= 0) & (fit.x_px < size) & (fit.y_px >= 0) & (fit.y_px < size)
    return (fit.converged[:, None] & (moved <= reach_px) & (fit.photons > 0) & inside
            & np.isfinite(widest) & (fit.crlb_x_px > 0) & (widest <= MAX_MOVE_PX))


def _values(fit, g: np.ndarray, k: np.ndarray, origins: np.ndarray, px: float) -> dict[str, np.ndarray]:
    """The table's values (n,) of emitters k of groups g (each (n,); ROIs with corners `origins`
    (G, 2) (row, col))."""
    misfit = misfit_scale(fit.misfit[g, k])
    values = {"x_nm": (fit.x_px[g, k] + origins[g, 1]) * px, "y_nm": (fit.y_px[g, k] + origins[g, 0]) * px,
              "photons": fit.photons[g, k], "background": fit.background[g],
              "uncertainty_x_nm": fit.crlb_x_px[g, k] * misfit * px,
              "uncertainty_y_nm": fit.crlb_y_px[g, k] * misfit * px}
    if fit.z_nm is not None:
        values.update(z_nm=fit.z_nm[g, k], uncertainty_z_nm=fit.crlb_z_nm[g, k] * misfit)
    return values


def _take(columns: dict, fitted: np.ndarray, fit, slots: np.ndarray, origins: np.ndarray, good: np.ndarray,
          px: float) -> None:
    """Write the fits that hold into the table's columns (rows from `slots`), marked fitted."""
    g, k = np.nonzero(good)
    for name, values in _values(fit, g, k, origins, px).items():
        columns[name][slots[g, k]] = values
    fitted[slots[g, k]] = FITTED


def _take_splits(columns: dict, fitted: np.ndarray, holds: np.ndarray, batch, fit, slots: np.ndarray,
                 origins: np.ndarray, cores: np.ndarray, x_px: np.ndarray, y_px: np.ndarray, spots: SpotModel,
                 excess: float, px: float) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Write the groups whose split stands (split.py; every member's refit holds) into the
    table's columns (the `cores` slots of each) and clear them from `holds`; returns [(parent
    rows, values)] of the emitters split off."""
    splits = split_merged(batch, fit, holds, spots, excess)
    if splits is None:
        return []
    parents = slots[splits.groups, splits.parent]
    split_slots = np.column_stack([slots[splits.groups], parents])
    split_origins = origins[splits.groups]
    # in 3-D the two halves of a split stand where they lie within the light that was split
    # (split.MOMENT_SIGMAS of the parent's PSF sigma from the parent's network position), not only
    # within MAX_MOVE_PX: a pair of wide defocused spots the network merged lies farther apart than
    # that. In 2-D the splits this adds were 4.4 % false against 0.5 % (split validation stacks)
    reach = np.full(split_slots.shape, MAX_MOVE_PX)
    if splits.fit.z_nm is not None:
        for half in (np.arange(len(splits.groups)), splits.parent), (slice(None), -1):
            reach[half] = np.maximum(MAX_MOVE_PX, MOMENT_SIGMAS * splits.parent_sigma_px)
    split_holds = _holds(splits.fit, split_slots, split_origins, x_px, y_px, batch.sizes[splits.groups], reach)
    stands = splits.accepted & split_holds.all(1)
    holds[splits.groups[stands]] = False
    _take(columns, fitted, splits.fit, split_slots[:, :-1], split_origins,
          split_holds[:, :-1] & stands[:, None] & cores[splits.groups], px)
    new_slot = split_slots.shape[1] - 1
    standing = np.flatnonzero(stands)
    return [(parents[standing], _values(splits.fit, standing, np.full(len(standing), new_slot), split_origins, px))]


def with_held_light(batch: GroupBatch, others: np.ndarray, origins: np.ndarray, x_px: np.ndarray,
                    y_px: np.ndarray, z_nm: np.ndarray | None, photons: np.ndarray, spots: SpotModel) -> GroupBatch:
    """`batch` with the light of the detections `others` (G, M) held in its model: their
    expected photons in the ROIs of corners `origins` (rows of the per-detection arrays,
    positions in px of the frame; -1 for none), on the pixels each group is fitted on (0 on the
    rest, which no use of it reads). Unchanged where no group holds any."""
    active = others >= 0
    if not active.any():
        return batch
    groups, size, _ = batch.counts_GRR.shape
    safe = np.where(active, others, 0)
    xy = np.stack([x_px[safe] - origins[:, 1:], y_px[safe] - origins[:, :1]], axis=-1)
    params = spots.start(xy, None if z_nm is None else z_nm[safe], np.where(active, photons[safe], 0.0))
    (rows, cols), fitted = batch.pixels
    each = tuple(np.repeat(index, others.shape[1], axis=0) for index in (rows, cols))  # per held spot
    values = spots.light(params.reshape(-1, len(spots.step)), size, each).reshape(*others.shape, -1).sum(1)
    known = np.zeros((groups, size * size))
    np.put_along_axis(known, rows * size + cols, values * fitted, 1)
    return dataclasses.replace(batch, known_GRR=known.reshape(groups, size, size))


def _confused(fitted: np.ndarray, network_sd_nm: np.ndarray, fit_x_nm: np.ndarray, fit_y_nm: np.ndarray) -> np.ndarray:
    """The fitted rows where the network states a position CONFUSED_RATIO times less certain,
    against the fit's bound, than it typically does in these rows: it has seen something the
    group's model lacks (mostly a neighbour it missed or merged, whose light the fit takes for
    its own)."""
    ratio = np.where(fitted == FITTED, network_sd_nm / np.sqrt((fit_x_nm ** 2 + fit_y_nm ** 2) / 2), np.nan)
    if not np.isfinite(ratio).any():
        return np.zeros(len(ratio), bool)
    return ratio > CONFUSED_RATIO * np.nanmedian(ratio)


def _widen_by_disagreement(columns: dict, fitted: np.ndarray, network: pd.DataFrame, network_sd: dict) -> None:
    """Add to each fitted row's uncertainty per axis (network_sd's keys), in quadrature, how far
    the fit lies from the network's position of the row (`network`'s x_nm, y_nm, z_nm) beyond what
    the network's own stated uncertainty (network_sd, nm per axis) explains: sqrt(max(d² - sd², 0)).
    Two estimates of one emitter that disagree say that one of them is wrong, mostly the fit's,
    led by a neighbour the network missed or merged (which its bound cannot know); a network no more
    precise than its sd says is no such sign. For the two halves of a split, the network's one
    emitter between them is the alternative: where the split is wrong, that is the error (their sd
    0: the whole distance is added). Adding the whole disagreement went on validation stacks (2-D
    seeds 12,001,104-111, 3-D 12,200,460-463, 0.1-2 /µm²) from error / uncertainty sd 0.92-1.95 to
    0.85-1.26 in 3-D and 0.89-1.05 in 2-D, but stated bright spots' uncertainties 1.3-1.6 times too
    large (12,000 photons on 100 /px, seeds 12,001,610-611: sd 0.63-0.75 behind v1 and the fast
    model), where the network's positions are several times less precise than the fit's; less the
    network's variance, 0.75-0.95 there, 0.92-1.10 on the 2-D stacks (0.89-1.05 before) and the same
    in 3-D (seeds 12,200,517-520). Adding only the disagreement beyond k times the two stated
    uncertainties did worse for every k tried (0.2-0.5)."""
    moved = fitted > NETWORK
    for axis, sd in network_sd.items():
        apart = columns[f"{axis}_nm"][moved] - network[f"{axis}_nm"].to_numpy(np.float64)[moved]
        unexplained = np.sqrt(np.maximum(apart ** 2 - np.nan_to_num(sd[moved]) ** 2, 0.0))
        columns[f"uncertainty_{axis}_nm"][moved] = np.hypot(columns[f"uncertainty_{axis}_nm"][moved], unexplained)


def _weigh_with_network(columns: dict, rows: np.ndarray, network: pd.DataFrame, fit_sd: dict,
                        network_sd: dict, independent: bool) -> None:
    """The position of each of `rows` (bool) per axis (fit_sd's keys) the mean of its fit's and the
    network's (`network`'s x_nm, y_nm (, z_nm)), weighted by the inverse of their stated variances
    (fit_sd, network_sd: per axis, nm; the fit's alone where the network states none). In 3-D the
    network's estimate carries what
    it learned (the depths emitters take, spots beside others), the fit the photons' likelihood
    under a calibration measured on beads: on our 3-D validation stacks (seeds 12,200,460-463,
    0.1-2 /µm²) the network alone was the better in z at 0.1 /µm² (46.5 against the fit's 57.4
    nm; 53.5 with the true PSF), the fit elsewhere; weighted, lateral / axial RMSE 20.1 / 50.3,
    23.5 / 56.0, 30.8 / 73.5, 38.5 / 91.0 nm against the fit's 20.6 / 57.4, 23.6 / 57.3, 32.3 /
    74.5, 39.7 / 94.3 (choosing the more certain of the two: worse than weighting at every density).
    In 2-D, where the network learns little a fit lacks, weighting was mixed on validation stacks
    (seeds 12,001,104-111: sCMOS 0.1-0.6 nm better; EMCCD at 0.1 /µm² 0.9 nm worse, at 0.5 /µm²
    0.11 points of Jaccard lower) and is not done, but for a network that sees context frames
    (refine_table), and there only for rows where it states a position more certain than the
    fit's bound: the frames beside told it more than this frame's photons, which the fit has too.
    Where it does not (a molecule on in this frame only), its estimate comes from the photons the
    fit used, and weighing the two as independent stated too little: on validation stacks (seeds
    12,001,500-503, 0.1-2 /µm², the 2-D window model of configs/cpu_2d_context_independent_long.json)
    with every fitted row weighed, error / uncertainty sd 1.14-1.29 on frames simulated each on
    their own and 0.97-1.11 on blinking ones; with these rows weighed only, 0.92-1.03 and 0.89-0.96,
    RMSE 0.20-0.34 nm lower on the former at 0.1-1 /µm² (0.13 higher at 2), 0.21-0.56 nm higher on
    the latter (only rows below 0.8 times the bound: 0.80-0.98, RMSE higher on both; below 1.3
    times: as every row).

    Where the two estimates are `independent` (a network that saw the frames beside: photons the
    fit never saw), each row's uncertainty per axis becomes that of the weighed mean, widened in
    quadrature by INHERITED_DISAGREEMENT (z: AXIAL_INHERITED_DISAGREEMENT) times how far the fit
    lies from the network (one of them is led astray by a neighbour, and the mean inherits part of
    it); otherwise (a one-frame 3-D model sees that frame only, as the fit does) it stays the fit's,
    widened by the disagreement the network's own uncertainty does not explain
    (_widen_by_disagreement): the weighed mean's own uncertainty stated 1.3-1.7 times too little on
    3-D validation stacks (seeds 12,200,480-482)."""
    for axis in fit_sd:
        fit_var, network_var = fit_sd[axis][rows] ** 2, network_sd[axis][rows] ** 2
        known = np.isfinite(network_var) & (network_var > 0)
        weight = np.where(known, network_var / (fit_var + network_var), 1.0)
        estimate = network[f"{axis}_nm"].to_numpy(np.float64)[rows]
        apart = columns[f"{axis}_nm"][rows] - estimate
        columns[f"{axis}_nm"][rows] = estimate + weight * apart
        if independent:
            mean_sd = np.sqrt(weight * fit_var)  # 1 / (1 / fit_var + 1 / network_var)
            share = AXIAL_INHERITED_DISAGREEMENT if axis == "z" else INHERITED_DISAGREEMENT
            widened = np.hypot(mean_sd, share * apart)
            columns[f"uncertainty_{axis}_nm"][rows] = np.where(known, widened, columns[f"uncertainty_{axis}_nm"][rows])


def counted_in_share(fitted: np.ndarray, crowded: np.ndarray) -> np.ndarray:
    """(N,) the rows Storey's share of background-only localisations is judged over
    (background_test.discoveries): all but those whose fit did not hold and that were tested
    beside brighter spots (at the network's position among crowded spots their test says little:
    on a dense 3-D validation stack 97 of the 106 rows under 0.5 sd were real). An isolated row
    whose fit failed still counts (a phantom on a bright patch of background is one)."""
    return (fitted > NETWORK) | ~crowded


def network_sd_per_axis(network_sd_nm: np.ndarray, sigma_x_px: np.ndarray,
                        sigma_y_px: np.ndarray) -> dict[str, np.ndarray]:
    """The network's one lateral uncertainty (N,) nm split per axis in the proportion of its spot's
    width along each, sigma_x_px and sigma_y_px (N,) (astigmatic spots at the network's z; round
    ones: unchanged), keeping the root mean square of the two: a spot twice as wide along x is
    about twice as uncertain along x. On 3-D validation stacks (seeds 12,200,491-494, 0.1-2 /µm², the
    bundled 3-D model) the isotropic figure left error / uncertainty sd, over matches with |error| < 4 uncertainties, at
    1.18-1.22 along the wide axis and 0.82-0.89 along the narrow one (0.93-1.08 split); over every
    match, on fresh seeds 12,200,495-498, x / y 1.02 / 1.00, 1.38 / 1.15, 1.24 / 1.11, 1.24 / 1.23
    isotropic, 1.00 / 0.98, 1.31 / 1.18, 1.17 / 1.15, 1.21 / 1.20 split, lateral RMSE 0.03-0.14 nm
    lower (the weighing with the fit, _weigh_with_network, better informed)."""
    mean = np.sqrt((sigma_x_px ** 2 + sigma_y_px ** 2) / 2)
    return {"x": network_sd_nm * sigma_x_px / mean, "y": network_sd_nm * sigma_y_px / mean}


def read_variance_photons2(camera: Camera) -> np.ndarray | float:
    """Read-noise variance per pixel in photons² (the sCMOS variance map where there is one,
    else the camera's read noise), referred to the photons the fit counts."""
    per_photon = camera.em_gain * camera.qe
    if camera.variance_map is not None:
        return camera.pixel_calibration().read_variance_e2_YX().astype(np.float64) / per_photon ** 2
    return (camera.read_noise_e / per_photon) ** 2


def start_photons(table: pd.DataFrame) -> np.ndarray:
    """(N,) the network's photons of each row, at least 1 (100 where it states none)."""
    return np.nan_to_num(np.clip(table["photons"].to_numpy(np.float64), 1.0, None), nan=100.0)


@one_blas_thread
def refine_table(table: pd.DataFrame, photons_THW: np.ndarray, camera: Camera, spots: SpotModel | None,
                 phantom_fdr: float = PHANTOM_FDR, block_frames: int | None = None,
                 network_sees_more: bool = False) -> pd.DataFrame:
    """A copy of the network's `table` (frame indexes photons_THW) with x_nm, y_nm (z_nm in 3-D),
    photons, background and the uncertainties from the joint fits under the PSF of `spots`
    where they hold; adds uncertainty_x_nm, uncertainty_y_nm (Cramér–Rao bounds at the fit, EM
    excess noise included; the network's, split per axis by network_sd_per_axis, where the fit
    does not hold or is confused, _confused; widened by how far the
    fit lies from the network's position, _widen_by_disagreement), fitted and
    significance, and keeps only the discoveries against background only at false-discovery
    rate phantom_fdr (background_test; 0 keeps every row). With spots None (no PSF to fit with)
    every row keeps the network's values. What is judged over many rows (which are confused, the
    share of background-only rows) is judged per block of block_frames frames (frame //
    block_frames; the whole table by default): the fits are batched over the whole table, and a
    run's result does not depend on how many blocks are refined together. In 3-D, and in 2-D where
    network_sees_more (a network that sees context frames: its estimate carries the photons an
    emitter left in the frames beside, which a fit of one frame lacks), each fitted row's position
    is its fit's and the network's weighed by their stated variances (_weigh_with_network); behind
    a network that sees context frames, its uncertainty is then the weighed mean's, widened by part
    of their disagreement, and in 2-D the test against background only also asks each detection
    the network is unsure of to be a spot in its own frame (background_test.seen_in_own_frame). In
    3-D that test is not made: on 3-D validation stacks (seeds 12,200,487-490, 0.1-2 /µm², the 3-D
    window model of configs/cpu_3d_context.json) it removed real emitters among overlapping
    defocused spots (Jaccard 96.06 / 91.69 / 87.25 / 79.72 % with it, 96.12 / 91.86 / 87.83 /
    80.92 % without; lateral RMSE within 0.8 nm, axial within 0.9 nm)."""
    px = camera.pixel_size_nm
    out = table.copy()
    network_sd = out["uncertainty_nm"].to_numpy() if "uncertainty_nm" in out else np.full(len(out), np.nan)
    out["uncertainty_x_nm"], out["uncertainty_y_nm"], out["fitted"] = network_sd, network_sd, NETWORK
    if "background" not in out:
        out["background"] = np.nan
    if not len(out) or spots is None:
        return out.assign(background=out["background"].fillna(0.0))
    frame = out["frame"].to_numpy().astype(int)
    x_px, y_px = out["x_nm"].to_numpy() / px, out["y_nm"].to_numpy() / px
    z_nm = out["z_nm"].to_numpy(np.float64) if "z_nm" in out else None
    sigmas_px = spots.sigmas_px(np.zeros(len(out)) if z_nm is None else np.nan_to_num(z_nm))  # at the network's z
    network_axis_sd = network_sd_per_axis(network_sd, *sigmas_px)
    out["uncertainty_x_nm"], out["uncertainty_y_nm"] = network_axis_sd["x"], network_axis_sd["y"]
    photons = start_photons(out)
    photons_THW = np.nan_to_num(photons_THW.astype(np.float64))
    read_variance = read_variance_photons2(camera)
    cut = cut_groups(photons_THW, read_variance, frame, x_px, y_px, photons, np.maximum(*sigmas_px), z_nm)
    names = ["x_nm", "y_nm", "photons", "background", "uncertainty_x_nm", "uncertainty_y_nm"]
    depth = z_nm is not None and "uncertainty_z_nm" in out
    columns = {name: out[name].to_numpy(np.float64).copy()
               for name in names + (["z_nm", "uncertainty_z_nm"] if depth else [])}
    fitted = np.full(len(out), NETWORK, np.int64)
    added: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []  # (parent rows, values) of split-off emitters
    parts = []  # (batch, slots, origins, others, cores, of a large group): whole groups and parts apart
    for batch, slots, origins, others, cores in zip(cut.batches, cut.members, cut.origins, cut.others, cut.cores):
        in_part = (others >= 0).any(1) | ~cores.all(1)
        for g, large in ((np.flatnonzero(~in_part), False), (np.flatnonzero(in_part), True)):
            if len(g):
                parts.append((batch.take(g), slots[g], origins[g], others[g], cores[g], large))
    for fit_round in range(PART_ROUNDS):
        todo = [part for part in parts if part[-1] or not fit_round]
        # the parts of one ROI size are fitted beside the same held light, whatever their number of
        # emitters: their neighbours' fits from parts of other sizes and rounds before, else the network's
        for _, same_size in itertools.groupby(todo, key=lambda part: part[0].counts_GRR.shape[1]):
            same_size = list(same_size)
            known = np.where(fitted > NETWORK, columns["photons"], photons)
            held = [with_held_light(batch, others, origins, columns["x_nm"] / px, columns["y_nm"] / px,
                                    columns["z_nm"] if depth else z_nm, known, spots)
                    for batch, _, origins, others, _, _ in same_size]
            for batch, (_, slots, origins, _, cores, large) in zip(held, same_size):
                fit = fit_groups(batch, spots, camera.excess_noise_factor)
                holds = _holds(fit, slots, origins, x_px, y_px, batch.sizes) & cores
                if fit_round == PART_ROUNDS - 1 or not large:  # a group's last fit
                    added += _take_splits(columns, fitted, holds, batch, fit, slots, origins, cores, x_px, y_px,
                                          spots, camera.excess_noise_factor, px)
                _take(columns, fitted, fit, slots, origins, holds, px)
    parents = np.concatenate([rows for rows, _ in added]).astype(int) if added else np.zeros(0, int)
    if len(parents):
        out = pd.concat([out, out.iloc[parents]], ignore_index=True)
        for name in columns:
            columns[name] = np.concatenate([columns[name], *(values[name] for _, values in added)])
        fitted, network_sd = np.r_[fitted, np.full(len(parents), SPLIT)], np.r_[network_sd, network_sd[parents]]
        network_axis_sd = {axis: np.r_[sd, sd[parents]] for axis, sd in network_axis_sd.items()}
        frame = np.r_[frame, frame[parents]]
    block = frame // block_frames if block_frames else np.zeros(len(frame), int)
    blocks = [block == b for b in np.unique(block)]
    confused = np.zeros(len(fitted), bool)
    for rows in blocks:
        confused[rows] = _confused(fitted[rows], network_sd[rows], columns["uncertainty_x_nm"][rows],
                                   columns["uncertainty_y_nm"][rows])
    for axis in "xy":
        columns[f"uncertainty_{axis}_nm"][confused] = network_axis_sd[axis][confused]
    if depth:
        columns["uncertainty_z_nm"][confused] = out["uncertainty_z_nm"].to_numpy()[confused]
    axes, weigh = ("xyz" if depth else "xy"), depth or network_sees_more
    # the fits' bounds, before they are widened (a confused row's is the network's uncertainty, so
    # it is weighed half and half)
    bounds = {axis: columns[f"uncertainty_{axis}_nm"].copy() for axis in axes} if weigh else None
    if depth:
        network_axis_sd["z"] = out["uncertainty_z_nm"].to_numpy(np.float64)
    # a split's halves: the network's uncertainty was of one emitter, not of whether there are two
    explained = {axis: np.where(fitted == SPLIT, 0.0, sd) for axis, sd in network_axis_sd.items()}
    for sd in explained.values():
        sd[parents] = 0.0
    _widen_by_disagreement(columns, fitted, out, explained)
    if weigh:
        weighed = fitted == FITTED
        weighed[parents] = False  # a split's half: the network's row was of both
        if not depth:  # a context network's estimate adds to the fit's only where it knows more (docstring)
            weighed &= network_sd < np.sqrt((bounds["x"] ** 2 + bounds["y"] ** 2) / 2)
        _weigh_with_network(columns, weighed, out, bounds, network_axis_sd, independent=network_sees_more)
    for axis in "xy":  # a row whose fit did not hold is a hard one: the network's uncertainty, widened
        columns[f"uncertainty_{axis}_nm"][fitted == NETWORK] *= FAILED_FIT_WIDENING
    for name, values in columns.items():
        out[name] = values
    out["fitted"] = fitted
    sigma_x, sigma_y = spots.sigmas_px(columns["z_nm"] if depth else np.zeros(len(out)))
    out["significance"], crowded = significance(photons_THW, read_variance, camera.excess_noise_factor, frame,
                                                columns["x_nm"] / px, columns["y_nm"] / px,
                                                np.nan_to_num(columns["photons"]), sigma_x, sigma_y)
    if phantom_fdr > 0:
        tested, counted = out["significance"].to_numpy(), counted_in_share(fitted, crowded)
        kept = np.zeros(len(out), bool)
        for rows in blocks:
            kept[rows] = discoveries(tested[rows], frame[rows], phantom_fdr, counted[rows])
        if network_sees_more and not depth:  # 2-D only (docstring)
            kept &= seen_in_own_frame(tested, out["probability"].to_numpy())
        out = out[kept].reset_index(drop=True)
    if "uncertainty_nm" in out:
        out["uncertainty_nm"] = np.sqrt((out["uncertainty_x_nm"] ** 2 + out["uncertainty_y_nm"] ** 2) / 2)
    if len(parents):
        out = out.sort_values("frame", kind="stable").reset_index(drop=True)
    if out["background"].isna().any():  # network models without a background output, where no fit held
        out["background"] = out["background"].fillna(float(np.nanmedian(columns["background"])) if fitted.any()
                                                      else 0.0)
    return out
