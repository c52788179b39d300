"""Drift, merging, NeNA / FRC, rendering and statistics on localisation tables from the
simulator's blinking fluorophores (simulate/localizations.py), whose truth is known. The seeds
here were not used to choose any default (those were chosen on seeds 1-41)."""

import re

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_var_emitter.analysis.drift import apply_drift, fiducial_drift, rcc_drift
from napari_var_emitter.analysis.merge import link_blinks, merge_blinks, merge_groups
from napari_var_emitter.analysis.render import add_scale_bar, render, render_coloured
from napari_var_emitter.analysis.resolution import frc, frc_text, nena
from napari_var_emitter.analysis.stats import table_stats
from napari_var_emitter.errors import InputError
from napari_var_emitter.io.tiff import read_stack, write_image_tiff
from napari_var_emitter.simulate.config import SimulationConfig, StructureConfig
from napari_var_emitter.simulate.localizations import blink_events, drift_trajectory, simulate_localizations

FILAMENTS = SimulationConfig(frame_size=(64, 64), n_frames=10_000, density_per_um2=0.5,
                             structure=StructureConfig(kind="filaments"))


def _rms_nm(error_T2: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum(error_T2**2, axis=1))))


@pytest.mark.parametrize("seed", [101, 102])
def test_rcc_removes_drift_to_within_5_nm(seed):
    """Filaments at 0.5 /µm², 10,000 frames, linear drift of 300 nm plus a slow random walk."""
    rng = np.random.default_rng(seed)
    true_T2 = drift_trajectory(FILAMENTS.n_frames, rng, total_nm=300.0)
    locs, truth = simulate_localizations(FILAMENTS, rng, true_T2)
    drift = rcc_drift(locs)
    residual = drift.drift_nm_T2 - true_T2
    residual -= residual.mean(0)  # a global offset is not drift (the trajectory has mean 0 by definition)
    assert np.hypot(*(true_T2 - true_T2[0]).T).max() > 200  # a 300 nm line plus the walk
    assert _rms_nm(residual) <= 5.0
    corrected = apply_drift(locs, drift)
    error_before = (locs[["x_nm", "y_nm"]] - truth[["x_nm", "y_nm"]]).to_numpy()
    error_after = (corrected[["x_nm", "y_nm"]] - truth[["x_nm", "y_nm"]]).to_numpy()
    spread_before, spread_after = (np.hypot(*(e - e.mean(0)).T) for e in (error_before, error_after))
    assert np.median(spread_after) < 0.2 * np.median(spread_before)


def test_rcc_leaves_a_table_without_drift_alone():
    locs, _ = simulate_localizations(FILAMENTS, np.random.default_rng(103))
    drift = rcc_drift(locs)
    shift = np.hypot(*drift.drift_nm_T2[locs["frame"]].T)
    assert shift.max() <= 2.0, f"max shift {shift.max():.2f} nm"
    corrected = apply_drift(locs, drift)
    assert list(corrected.columns) == list(locs.columns)
    assert (corrected["photons"] == locs["photons"]).all()


def test_fiducials_give_the_drift():
    """Three always-on bright beads marked by hand (their drifted positions) on a uniform sample."""
    rng = np.random.default_rng(104)
    config = SimulationConfig(frame_size=(64, 64), n_frames=2000, density_per_um2=0.2)
    true_T2 = drift_trajectory(config.n_frames, rng, total_nm=250.0)
    locs, _ = simulate_localizations(config, rng, true_T2)
    beads = np.array([[1000.0, 1200.0], [5000.0, 2000.0], [3000.0, 5500.0]])
    frames = np.repeat(np.arange(config.n_frames), len(beads))
    bead_xy = np.tile(beads, (config.n_frames, 1)) + true_T2[frames] + rng.normal(0, 2.0, (frames.size, 2))
    fiducials = pd.DataFrame({"frame": frames, "x_nm": bead_xy[:, 0], "y_nm": bead_xy[:, 1],
                              "photons": 50_000.0, "background": 50.0, "uncertainty_nm": 2.0})
    table = pd.concat([locs, fiducials], ignore_index=True)
    drift = fiducial_drift(table, beads + true_T2.mean(0), radius_nm=400)
    residual = drift.drift_nm_T2 - true_T2
    assert _rms_nm(residual - residual.mean(0)) <= 3.0


def test_rcc_says_how_far_its_segments_agree_and_refuses_segments_that_disagree():
    """Sparse filaments (0.1 /µm²): segments of ~300 localisations give noise for drift (~100 nm
    off on our tables) and are refused; the automatic length (~2,000 each) is accepted and right."""
    config = SimulationConfig(frame_size=(64, 64), n_frames=4000, density_per_um2=0.1,
                              structure=StructureConfig(kind="filaments"))
    rng = np.random.default_rng(106)
    true_T2 = drift_trajectory(config.n_frames, rng, total_nm=300.0)
    locs, _ = simulate_localizations(config, rng, true_T2)
    before = locs.copy()
    with pytest.raises(InputError, match=r"RCC could not measure the drift: \d+ segments of 75(–\d+)? frames .* "
                                         r"disagree by ±[\d.]+ nm \(at most 5 nm .*set a longer segment length"):
        rcc_drift(locs, 75)
    drift = rcc_drift(locs)
    assert np.diff(drift.segment_edges).min() > 300 and drift.disagreement_nm <= 5.0
    residual = drift.drift_nm_T2 - true_T2
    assert _rms_nm(residual - residual.mean(0)) <= 10.0
    pd.testing.assert_frame_equal(locs, before)


def test_rcc_refuses_molecules_no_two_segments_share_after_trying_longer_segments():
    """Uniform molecules that blink in one stretch only: no structure for the segments to share."""
    config = SimulationConfig(frame_size=(64, 64), n_frames=2000, density_per_um2=0.5)
    locs, _ = simulate_localizations(config, np.random.default_rng(107))
    with pytest.raises(InputError, match=r"could not measure the drift with segments from (\d+) to "
                                         r"(\d+) frames long; at best .*: use fiducials") as caught:
        rcc_drift(locs)
    first, last = (int(v.replace(",", "")) for v in
                   re.search(r"from ([\d,]+) to ([\d,]+)", str(caught.value)).groups())
    assert last >= 4 * first


def test_rcc_refuses_what_it_cannot_measure_and_check_clearly():
    """RCC needs 4 segments (2 give one shift, nothing to check it against; 3 too weak a check) of
    50 localisations or more: a new user's 30 localisations were told to set a shorter segment
    length by one message and a longer one by the other; a 2-segment drift was applied unchecked."""
    sparse, _ = simulate_localizations(SimulationConfig(frame_size=(32, 32), n_frames=100, density_per_um2=0.05),
                                       np.random.default_rng(105))
    assert len(sparse) < 200
    for segment_frames in (None, 10):
        with pytest.raises(InputError, match=rf"too few localisations for RCC: {len(sparse)} in frames \d+–\d+, "
                                             r"and RCC needs at least 4 segments .* use fiducials$"):
            rcc_drift(sparse, segment_frames)
    locs, _ = simulate_localizations(FILAMENTS, np.random.default_rng(108))
    with pytest.raises(InputError, match=r"too few segments for RCC: the 10,000 frames with localisations make 3 of "
                                         r"3,000 frames, and RCC needs at least 4 .* at most 2,500 frames"):
        rcc_drift(locs, 3000)
    drift = rcc_drift(locs, 2400)  # 4 segments of 2,500 frames
    assert drift.summary().endswith(f"(RCC: 4 segments of 2,500 frames, agreeing to ±{drift.disagreement_nm:.1f} nm)")


def test_rcc_segments_the_frames_with_localisations():
    """A run on a range of frames (its first frame 2,001) was cut from frame 1: its first segments
    empty, refused with "use fiducials"."""
    config = SimulationConfig(frame_size=(64, 64), n_frames=2000, density_per_um2=0.5,
                              structure=StructureConfig(kind="filaments"))
    rng = np.random.default_rng(109)
    true_T2 = drift_trajectory(config.n_frames, rng, total_nm=300.0)
    locs, _ = simulate_localizations(config, rng, true_T2)
    later = locs.assign(frame=locs["frame"] + 2000)
    drift = rcc_drift(later)
    assert len(drift.drift_nm_T2) == 4000 and drift.segment_edges[0] == later["frame"].min()
    residual = drift.drift_nm_T2[2000:] - true_T2
    assert _rms_nm(residual - residual.mean(0)) <= 5.0
    # the same positions corrected as the run from frame 1 gives (a review: the frames before it moved them)
    same = apply_drift(locs, rcc_drift(locs))[["x_nm", "y_nm"]].to_numpy()
    np.testing.assert_allclose(apply_drift(later, drift)[["x_nm", "y_nm"]].to_numpy(), same, atol=1e-6)
    assert drift.summary() == rcc_drift(locs).summary().replace("over 2,000 frames", "over 4,000 frames")
    # frames without localisations inside the run (a review: refused as "too few localisations")
    gap = locs[~locs["frame"].between(400, 1599)]
    bridged = rcc_drift(gap)  # a segment across the gap sees the walk's 1,200 frames as one
    residual = bridged.drift_nm_T2[gap["frame"].unique()] - true_T2[gap["frame"].unique()]
    assert _rms_nm(residual - residual.mean(0)) <= 10.0


def _purity_completeness(group: np.ndarray, event: np.ndarray) -> tuple[float, float]:
    """Share of merged groups whose members are one true blink, and of true blinks found as one group."""
    pairs = pd.DataFrame({"group": group, "event": event})
    pure = pairs.groupby("group")["event"].nunique() == 1
    complete = pairs.groupby("event")["group"].nunique() == 1
    return float(pure.mean()), float(complete.mean())


def test_merging_recovers_blink_events():
    config = SimulationConfig(frame_size=(128, 128), n_frames=2000, density_per_um2=0.1)
    locs, truth = simulate_localizations(config, np.random.default_rng(106))
    group = link_blinks(locs)
    purity, completeness = _purity_completeness(group, blink_events(truth, max_gap=1))
    assert purity >= 0.95 and completeness >= 0.95, (purity, completeness)
    merged = merge_blinks(locs)
    assert len(merged) == group.max() + 1
    assert merged["n_merged"].sum() == len(locs)
    assert merged["photons"].sum() == pytest.approx(locs["photons"].sum())
    assert (merged["last_frame"] >= merged["frame"]).all()


def test_in_3d_one_blink_keeps_its_depth():
    """One fluorophore at z = -300 nm in frames 1-2, another at the same x, y and +300 nm in frames
    3-4: two blinks (a new user's 3-D table merged such into one at their mean depth); z as noisy as
    stated: one blink; without z's uncertainty (a radius given, or a 2-D table): x, y alone."""
    table = pd.DataFrame({"frame": [0, 1, 2, 3], "x_nm": 500.0, "y_nm": 500.0, "z_nm": [-300.0, -300.0, 300.0, 300.0],
                          "uncertainty_nm": 10.0, "uncertainty_z_nm": 20.0})
    assert link_blinks(table).tolist() == [0, 0, 1, 1]
    assert link_blinks(table.assign(z_nm=[-20.0, 15.0, 0.0, 10.0])).tolist() == [0, 0, 0, 0]
    assert link_blinks(table.drop(columns="uncertainty_z_nm")).tolist() == [0, 0, 0, 0]
    with pytest.raises(InputError, match="uncertainty_z_nm"):  # a missing z uncertainty does not stop all linking
        link_blinks(table.assign(uncertainty_z_nm=[20.0, np.nan, 20.0, 20.0]))


def _merged_errors(locs: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    group = link_blinks(locs)
    merged = merge_groups(locs, group)
    first = pd.Series(locs["frame"].to_numpy()).groupby(group).min().sort_values(kind="stable").index
    count = np.bincount(group)
    true_x = np.bincount(group, truth["x_nm"]) / count
    true_y = np.bincount(group, truth["y_nm"]) / count
    merged["error_nm"] = np.hypot(merged["x_nm"] - true_x[first], merged["y_nm"] - true_y[first]) / np.sqrt(2)
    return merged


def test_merging_weighs_each_axis_by_its_own_uncertainty():
    """A refined table's per-axis uncertainties: x weighted by 1/σx², y by 1/σy², each merged
    uncertainty 1/sqrt(Σ 1/σ²) of its axis; the refinement's per-row flags left out."""
    table = pd.DataFrame({"frame": [0, 1], "x_nm": [100.0, 110.0], "y_nm": [200.0, 210.0],
                          "uncertainty_x_nm": [1.0, 2.0], "uncertainty_y_nm": [2.0, 1.0], "uncertainty_nm": 1.5,
                          "fitted": [1, 0], "significance": [30.0, 40.0]})
    (merged,) = merge_groups(table, np.array([0, 0])).itertuples()
    assert merged.x_nm == pytest.approx((100 / 1 + 110 / 4) / (1 + 1 / 4))
    assert merged.y_nm == pytest.approx((200 / 4 + 210 / 1) / (1 / 4 + 1))
    assert merged.uncertainty_x_nm == pytest.approx(1 / np.sqrt(1.25)) == merged.uncertainty_y_nm
    assert merged.uncertainty_nm == pytest.approx(1.5 / np.sqrt(2))
    assert not {"fitted", "significance"} & set(merged._fields)


def test_merged_precision_improves_as_one_over_sqrt_n():
    config = SimulationConfig(frame_size=(128, 128), n_frames=3000, density_per_um2=0.1)
    locs, truth = simulate_localizations(config, np.random.default_rng(107), precision_nm=10.0)
    merged = _merged_errors(locs, truth)
    rmse = {n: float(np.sqrt(np.mean(merged.loc[merged["n_merged"] == n, "error_nm"] ** 2))) for n in range(1, 6)}
    for n in range(2, 6):
        assert rmse[n] == pytest.approx(rmse[1] / np.sqrt(n), rel=0.15), rmse


def test_merged_uncertainty_states_the_merged_error():
    """With each localisation's own Cramér–Rao precision, the merged 1/sqrt(Σ1/σ²) matches the merged RMSE."""
    config = SimulationConfig(frame_size=(128, 128), n_frames=3000, density_per_um2=0.1)
    locs, truth = simulate_localizations(config, np.random.default_rng(108))
    merged = _merged_errors(locs, truth)
    for n in range(2, 6):
        chosen = merged[merged["n_merged"] == n]
        stated = np.sqrt(np.mean(chosen["uncertainty_nm"] ** 2))
        assert np.sqrt(np.mean(chosen["error_nm"] ** 2)) == pytest.approx(stated, rel=0.15)


@pytest.mark.parametrize("precision_nm", [8.0, 20.0])
def test_nena_measures_the_known_precision(precision_nm):
    config = SimulationConfig(frame_size=(128, 128), n_frames=2000, density_per_um2=0.5,
                              structure=StructureConfig(kind="filaments"))
    locs, truth = simulate_localizations(config, np.random.default_rng(109), precision_nm=precision_nm)
    known = np.sqrt(np.mean(np.r_[locs.x_nm - truth.x_nm, locs.y_nm - truth.y_nm] ** 2))
    assert nena(locs).precision_nm == pytest.approx(known, rel=0.10)


def test_nena_and_frc_state_how_far_they_can_be_trusted():
    """A new user's 33 localisations gave "NeNA precision: 2.9 nm (17 neighbour pairs)" and an FRC of
    118 nm without a caveat. NeNA's standard error (the likelihood's curvature) is the spread of its
    estimate over tables like it; the FRC's spread over random halvings grows as localisations are few (its
    value grows too: FRC measures the image's resolution, sampling included)."""
    config = SimulationConfig(frame_size=(64, 64), n_frames=150, density_per_um2=0.5,
                              structure=StructureConfig(kind="filaments"))
    estimates, stated = [], []
    for seed in range(30):
        locs, _ = simulate_localizations(config, np.random.default_rng(9200 + seed), precision_nm=10.0)
        fitted = nena(locs)
        estimates.append(fitted.precision_nm)
        stated.append(fitted.precision_sd_nm)
    assert np.std(estimates, ddof=1) == pytest.approx(np.mean(stated), rel=0.25), (np.std(estimates), np.mean(stated))
    assert np.max(stated) < 2.5 * np.min(stated)  # every table's own (a fit that stopped early made one 10x another)
    big = SimulationConfig(frame_size=(128, 128), n_frames=2000, density_per_um2=0.5,
                           structure=StructureConfig(kind="filaments"))
    locs, _ = simulate_localizations(big, np.random.default_rng(9250), precision_nm=10.0)
    with pytest.raises(InputError, match="NeNA needs the localisations before merging"):  # a merged one said 863 nm
        nena(merge_blinks(locs))
    sample = locs.sample(frac=0.03, random_state=0)
    assert nena(sample).precision_sd_nm > 2 * nena(locs).precision_sd_nm
    many = frc(locs)
    assert np.isfinite(many.resolution_sd_nm) and frc(sample).resolution_sd_nm > many.resolution_sd_nm
    assert frc_text(many).endswith(f" nm (its splits spread ± {many.resolution_sd_nm:.2g} nm)")
    few = frc(locs.sample(n=40, random_state=0))  # a figure its splits do not agree on is not stated as one
    assert few.resolution_sd_nm > 0.5 * few.resolution_nm and frc_text(few).startswith("not settled: its splits")
    assert many.settled and not few.settled


@pytest.mark.parametrize("sigma_over_spacing, resolved", [(0.3, True), (0.6, False)])
def test_frc_resolution_agrees_with_line_pairs_of_known_spacing(sigma_over_spacing, resolved):
    """Pairs of lines 60 nm apart: blurred by σ they can be told apart when 60 nm > 2σ (Sparrow).
    The FRC resolution must be finer than 60 nm exactly when they can."""
    spacing = 60.0
    config = SimulationConfig(frame_size=(32, 32), n_frames=2000, density_per_um2=2.0,
                              structure=StructureConfig(kind="line_pairs", n_filaments=6, filament_length_nm=1500,
                                                        label_sd_nm=0.0, pair_spacing_nm=spacing))
    locs, _ = simulate_localizations(config, np.random.default_rng(110), precision_nm=sigma_over_spacing * spacing)
    curve = frc(locs, pixel_nm=2.0)
    assert (curve.resolution_nm < spacing) == resolved, curve.resolution_nm
    assert curve.correlation[1] > 0.9 and np.all(np.isfinite(curve.correlation))


def test_render_blurs_each_localisation_by_its_own_uncertainty(tmp_path):
    table = pd.DataFrame({"frame": [0, 0], "x_nm": [500.0, 1500.0], "y_nm": [500.0, 500.0],
                          "uncertainty_nm": [10.0, 40.0]})
    image = render(table, (1000.0, 2000.0), 5.0)
    assert image.sum() == pytest.approx(2.0, rel=1e-3)
    sharp, wide = image[100, 60:140], image[100, 260:340]  # rows/columns of pixels around each
    assert sharp.max() > 10 * wide.max() / 2  # peak height goes as 1/σ²: 16x
    width_sharp = np.sqrt(np.sum(sharp * (np.arange(80) - 40) ** 2) / sharp.sum()) * 5
    width_wide = np.sqrt(np.sum(wide * (np.arange(80) - 40) ** 2) / wide.sum()) * 5
    assert width_sharp == pytest.approx(10.0, rel=0.2) and width_wide == pytest.approx(40.0, rel=0.2)
    path = tmp_path / "render.tif"
    write_image_tiff(path, image, 5.0)
    assert read_stack(path).camera_metadata["pixel_size_nm"] == pytest.approx(5.0)


def test_render_coloured_by_frame_and_scale_bar(tmp_path):
    table = pd.DataFrame({"frame": [0, 99], "x_nm": [200.0, 800.0], "y_nm": [200.0, 200.0],
                          "uncertainty_nm": [15.0, 15.0]})
    rgb = render_coloured(table, (400.0, 1000.0), 10.0, by="frame", colormap="viridis")
    early, late = rgb[20, 20], rgb[20, 80]
    assert rgb.shape == (40, 100, 3) and early[2] > early[1] and late[1] > late[2]  # viridis: blue -> yellow
    with_bar, length = add_scale_bar(rgb, 10.0)
    assert length == 200.0  # a round fifth of 1000 nm
    assert np.count_nonzero(np.all(with_bar == rgb.max(), axis=-1)) >= 20 * 2
    write_image_tiff(tmp_path / "rgb.tif", with_bar, 10.0)
    assert tifffile.imread(tmp_path / "rgb.tif").shape == (40, 100, 3)
    with pytest.raises(InputError, match="z_nm"):
        render_coloured(table, (400.0, 1000.0), 10.0, by="z_nm")


def test_stats_recover_the_bleaching_half_life():
    rng = np.random.default_rng(111)
    n_frames, tau = 5000, 1200.0
    counts = rng.poisson(40 * np.exp(-np.arange(n_frames) / tau) + 5)
    frames = np.repeat(np.arange(n_frames), counts)
    table = pd.DataFrame({"frame": frames, "x_nm": rng.uniform(0, 1e4, frames.size),
                          "y_nm": rng.uniform(0, 1e4, frames.size), "photons": rng.gamma(4, 500, frames.size)})
    stats = table_stats(table)
    assert stats.summary["bleaching"]["half_life_frames"] == pytest.approx(tau * np.log(2), rel=0.1)
    assert stats.summary["photons"]["median"] == pytest.approx(np.median(table["photons"]))
    assert stats.counts_per_frame.sum() == len(table)
    flat = table_stats(table.assign(frame=rng.integers(0, n_frames, len(table))))
    assert flat.summary["bleaching"] is None
    # a 3-D table's depths are summarised (a user's had none); 2-D truth's z = 0 is not
    depth = table.assign(z_nm=rng.uniform(-400, 400, len(table)), uncertainty_z_nm=30.0)
    assert table_stats(depth).summary["z_nm"]["median"] == pytest.approx(np.median(depth["z_nm"]))
    assert "z_nm" not in table_stats(table.assign(z_nm=0.0)).summary


def test_stats_plot_of_a_short_movie_fits_the_widgets_figure_and_counts_whole_frames():
    """An 11-frame movie in the Statistics widget's 2 x 2 grid (460 x 380 px): its frame axis reads whole
    frames (it read 2.5, 5.0, 7.5) and every label lies inside the figure (the counts' was cut at the top)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from napari_var_emitter.analysis.plots import draw_stats

    rng = np.random.default_rng(112)
    frames = np.repeat(np.arange(11), rng.poisson(100, 11))
    table = pd.DataFrame({"frame": frames, "x_nm": rng.uniform(0, 4e4, frames.size),
                          "y_nm": rng.uniform(0, 4e4, frames.size), "photons": rng.gamma(3, 100, frames.size),
                          "uncertainty_nm": rng.gamma(5, 8, frames.size)})
    figure = Figure(figsize=(4.6, 3.8), tight_layout=True)
    canvas = FigureCanvasAgg(figure)
    draw_stats(figure, table_stats(table))
    canvas.draw()
    ticks = [tick for tick in figure.axes[0].get_xticks() if 1 <= tick <= 11]
    assert ticks and all(float(tick).is_integer() for tick in ticks)
    box = figure.bbox
    for axes in figure.axes:
        for label in (axes.xaxis.label, axes.yaxis.label):
            extent = label.get_window_extent(canvas.get_renderer())
            assert box.x0 <= extent.x0 and extent.x1 <= box.x1 and box.y0 <= extent.y0 and extent.y1 <= box.y1, (
                label.get_text())


@pytest.mark.parametrize("step", [
    lambda t: rcc_drift(t), lambda t: merge_blinks(t), lambda t: nena(t), lambda t: frc(t), lambda t: table_stats(t)])
def test_bad_tables_get_clear_errors(step):
    good = pd.DataFrame({"frame": [0, 1, 2], "x_nm": [1.0, 2.0, 3.0], "y_nm": [1.0, 2.0, 3.0],
                         "uncertainty_nm": [5.0, 5.0, 5.0]})
    with pytest.raises(InputError, match="needs at least|has 0"):
        step(good.iloc[:0])
    with pytest.raises(InputError, match="no column"):
        step(good.drop(columns="y_nm"))
    with pytest.raises(InputError, match="NaN"):
        step(good.assign(x_nm=[1.0, np.nan, 3.0]))
