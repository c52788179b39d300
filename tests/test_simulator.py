import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import erf

from napari_var_emitter.errors import InputError
from napari_var_emitter.io.camera import Camera
from napari_var_emitter.io.emitters_h5 import read_emitters_h5
from napari_var_emitter.io.tiff import read_stack
from napari_var_emitter import psf as psf_module
from napari_var_emitter.psf import PSF, DefocusCurve, render_spots
from napari_var_emitter.simulate.background import background_map
from napari_var_emitter.simulate.camera_noise import add_uncalibrated_pixel_noise, expose
from napari_var_emitter.simulate.config import (KineticsConfig, SimulationConfig, StructureConfig,
                                                apply_overrides, draw_parameters)
from napari_var_emitter.simulate import kinetics as kinetics_module
from napari_var_emitter.simulate.dataset import simulate_dataset
from napari_var_emitter.simulate.stack import _expected_photons, simulate_stack, simulate_stack_and_background
from napari_var_emitter.simulate.structures import sample_positions


@pytest.mark.parametrize("density", [0.1, 1.0, 3.0])
def test_measured_density_matches_request(density):
    config = SimulationConfig(frame_size=128, n_frames=300, density_per_um2=density)
    _, truth = simulate_stack(config, np.random.default_rng(1))
    per_frame = truth.emitters.groupby("frame").size().reindex(range(300), fill_value=0)
    assert per_frame.mean() / config.field_um2 == pytest.approx(density, rel=0.08)


def test_blink_rate_pilot_counts_the_frames_it_would_list():
    """blink_records sets its activation rate from a pilot of 20,000 fluorophores, whose lit
    frames are counted without listing them: the count equals the listing's length, with short
    off periods (a frame lit twice by one fluorophore) and zero-length periods alike."""
    rng = np.random.default_rng(17)
    for _ in range(40):
        kinetics = KineticsConfig(on_time_frames=float(rng.uniform(0.01, 5)),
                                  off_time_frames=float(rng.uniform(0.001, 20)), blinks_mean=float(rng.uniform(1, 6)))
        periods = kinetics_module._blinks(rng.uniform(0, 1, 2000), kinetics, rng)
        assert kinetics_module._count_frames_touched(*periods) == len(kinetics_module._records(*periods))
    # a period within the frame its fluorophore's previous one ended in; one of zero length; another
    # fluorophore over two frames
    periods = np.array([0, 0, 0, 1]), np.array([0.5, 1.2, 2.0, 3.4]), np.array([1.1, 1.5, 2.0, 4.6])
    assert kinetics_module._count_frames_touched(*periods) == len(kinetics_module._records(*periods)) == 4


def test_photons_and_blinking():
    config = SimulationConfig(frame_size=128, n_frames=300, density_per_um2=1.0, photons_mean=3000,
                              photons_cv=0.3, kinetics=KineticsConfig(on_time_frames=4, blinks_mean=1))
    _, truth = simulate_stack(config, np.random.default_rng(2))
    emitters = truth.emitters
    runs = emitters.groupby("id").agg(first=("frame", "min"), last=("frame", "max"),
                                      count=("frame", "size"), peak=("photons", "max"))
    assert (runs["last"] - runs["first"] + 1 == runs["count"]).all()  # one blink: consecutive frames
    assert runs["count"].mean() > 2  # on for several frames, with a persistent id
    # a blink over >= 3 frames has a fully-on middle frame: its peak is the brightness
    full = runs[(runs["count"] >= 3) & (runs["first"] > 0) & (runs["last"] < 299)]["peak"]
    assert full.mean() == pytest.approx(3000, rel=0.03)
    assert full.std() / full.mean() == pytest.approx(0.3, rel=0.1)
    partial = emitters["photons"] < 0.5 * emitters.groupby("id")["photons"].transform("max")
    assert partial.mean() > 0.1  # blinks starting or ending mid-frame are dimmer, and kept


def test_pixel_fractions_are_the_gaussians_integrals():
    """Each pixel's fraction is the Gaussian's integral over it."""
    rng = np.random.default_rng(29)
    first, centre, sigma = rng.integers(-20, 20, (50, 1)), rng.uniform(-25, 25, (50, 1)), rng.uniform(0.5, 6, (50, 1))
    lo = first + np.arange(15)
    integral = 0.5 * (erf((lo + 1 - centre) / (np.sqrt(2) * sigma)) - erf((lo - centre) / (np.sqrt(2) * sigma)))
    np.testing.assert_allclose(psf_module.consecutive_pixel_fractions(first, 15, centre, sigma), integral, atol=1e-15)


def test_spots_by_frame_products_equal_the_windows():
    """Wide spots on small frames are rendered as one matrix product per frame: the same pixels
    and values as the windows (to rounding), spots near and beyond the edges included."""
    rng = np.random.default_rng(23)
    n = 300
    frame, x, y = rng.integers(0, 4, n), rng.uniform(-6, 46, n), rng.uniform(-6, 38, n)
    sigma_x, photons = rng.uniform(0.6, 6.0, n), rng.uniform(50, 20000, n)
    sigma_y = sigma_x * rng.uniform(0.7, 1.4, n)
    args = ((4, 32, 40), frame, x, y, sigma_x, sigma_y, photons, int(np.ceil(4 * max(sigma_x.max(), sigma_y.max()))))
    windows = psf_module._render_in_windows(*args)
    np.testing.assert_allclose(psf_module._render_by_frame_products(*args), windows, rtol=1e-12, atol=0)
    assert 32 * 40 <= psf_module.WINDOWS_PER_FRAME_PRODUCT * (2 * args[-1] + 1) ** 2  # the products' case
    np.testing.assert_array_equal(render_spots(*args[:-1]), psf_module._render_by_frame_products(*args))


def test_psf_integral_and_photon_totals():
    image = render_spots((1, 40, 40), np.array([0]), np.array([20.3]), np.array([19.7]),
                         np.array([1.3]), np.array([1.3]), np.array([2500.0]))
    assert image.sum() == pytest.approx(2500.0, rel=1e-3)
    config = SimulationConfig(frame_size=64, n_frames=50, density_per_um2=0.3, background_photons=0,
                              camera=Camera(read_noise_e=0.0))
    frames, truth = simulate_stack(config, np.random.default_rng(3))
    collected = config.camera.adu_to_photons(frames).astype(np.float64).sum()
    # light of spots near the edge partly falls outside the frame: expected in-frame share
    scale = np.sqrt(2) * config.psf.sigma_nm
    inside = [0.5 * (erf((64 * 100 - v) / scale) - erf(-v / scale))
              for v in (truth.emitters["x_nm"], truth.emitters["y_nm"])]
    expected = (truth.emitters["photons"] * inside[0] * inside[1]).sum()
    assert collected == pytest.approx(expected, rel=0.005)


@pytest.mark.parametrize("camera", [
    Camera(baseline_adu=100, e_per_adu=2.0, read_noise_e=1.5),
    Camera(baseline_adu=100, e_per_adu=10.0, em_gain=100.0, read_noise_e=20.0, qe=0.9, type="EMCCD"),
])
def test_noise_variance(camera):
    background = 40.0
    adu = expose(np.full((64, 128, 128), background), camera, np.random.default_rng(4)).astype(float)
    electrons = background * camera.qe
    expected = (camera.excess_noise_factor * camera.em_gain**2 * electrons + camera.read_noise_e**2) \
        / camera.e_per_adu**2 + 1 / 12  # + rounding to whole ADU
    assert adu.var() == pytest.approx(expected, rel=0.03)
    assert camera.adu_to_photons(adu).mean() == pytest.approx(background, rel=0.01)


def test_clipping_to_uint16():
    adu = expose(np.full((1, 4, 4), 1e6), Camera(e_per_adu=1.0), np.random.default_rng(0))
    assert adu.dtype == np.uint16 and (adu == 65535).all()


def test_deterministic_for_a_seed():
    config = SimulationConfig(frame_size=32, n_frames=10)
    a, ta = simulate_stack(config, np.random.default_rng(11))
    b, tb = simulate_stack(config, np.random.default_rng(11))
    np.testing.assert_array_equal(a, b)
    assert ta.emitters.equals(tb.emitters)


def test_astigmatic_psf_widths_follow_z():
    psf = PSF(astigmatism=True, curve_x=DefocusCurve(130, 300, 500), curve_y=DefocusCurve(130, -300, 500))
    assert PSF.from_dict({"model": "gaussian", "sigma_nm": 130, "astigmatism": True, "focal_offset_nm": 300,
                          "depth_nm": 500}) == psf  # files written before per-axis curves
    sx, sy = psf.sigmas_nm(np.array([300.0, 0.0, -300.0]))
    assert sx[0] == pytest.approx(130) and sy[2] == pytest.approx(130)
    assert sx[1] == pytest.approx(sy[1]) and sx[2] > sy[2]
    config = SimulationConfig(frame_size=32, n_frames=5, psf=psf)
    _, truth = simulate_stack(config, np.random.default_rng(5))
    z = truth.emitters["z_nm"]
    assert z.min() >= -500 and z.max() <= 500 and z.std() > 100


def test_defocus_curve_higher_orders_and_slope():
    curve = DefocusCurve(sigma0_nm=140, focus_nm=-205, depth_nm=290, cubic=0.05, quartic=0.03)  # NAIRR x
    u = (np.array([-400.0, 0.0, 400.0]) + 205) / 290
    np.testing.assert_allclose(curve.sigma_nm([-400, 0, 400]), 140 * np.sqrt(1 + u**2 + 0.05 * u**3 + 0.03 * u**4))
    z = np.linspace(-600, 600, 13)
    numeric = (curve.sigma_nm(z + 0.01) - curve.sigma_nm(z - 0.01)) / 0.02
    np.testing.assert_allclose(curve.slope(z), numeric, rtol=1e-5, atol=1e-9)
    assert PSF.from_dict(PSF(astigmatism=True, curve_x=curve).to_dict()).curve_x == curve


@pytest.mark.parametrize("structure", [
    StructureConfig(kind="filaments", n_filaments=3),
    StructureConfig(kind="rings", n_rings=1, ring_radius_nm=(200, 200), label_sd_nm=0.0),
])
def test_structures_stay_in_field(structure):
    x, y = sample_positions(structure, 2000, (6400.0, 6400.0), np.random.default_rng(6))
    assert len(x) == 2000 and x.min() >= 0 and x.max() < 6400 and y.min() >= 0 and y.max() < 6400
    if structure.kind == "rings":
        radius = np.hypot(x - x.mean(), y - y.mean())
        np.testing.assert_allclose(radius, 200.0, rtol=0.01)
    else:  # points on curves: nearest neighbours far closer than in a uniform spread
        step = np.sort(np.hypot(np.diff(np.sort(x)), 0))[len(x) // 2]
        assert step < 6400 / 2000


@pytest.mark.parametrize("kind", ["uniform", "filaments", "rings", "line_pairs", "clusters"])
def test_fluorophores_of_every_other_structure_draw_as_before_close_pairs(kind):
    """Training runs resume on their random streams: blinking_fluorophores draws the blinks, then
    the positions, as simulate_stack did before close pairs came (the same values, the generator
    left in the same state)."""
    from napari_var_emitter.simulate.kinetics import blink_records
    from napari_var_emitter.simulate.structures import blinking_fluorophores

    config = SimulationConfig(frame_size=(40, 48), n_frames=12, density_per_um2=0.7,
                              structure=StructureConfig(kind=kind))
    rng_now, rng_before = np.random.default_rng(8), np.random.default_rng(8)
    records, x_nm, y_nm = blinking_fluorophores(config, rng_now)
    before = blink_records(config.n_frames, config.density_per_um2 * config.field_um2, config.kinetics, rng_before)
    x_before, y_before = sample_positions(config.structure, int(before["id"].max()) + 1, (4000.0, 4800.0), rng_before)
    pd.testing.assert_frame_equal(records, before)
    np.testing.assert_array_equal(x_nm, x_before)
    np.testing.assert_array_equal(y_nm, y_before)
    assert rng_now.uniform() == rng_before.uniform()


def test_close_pairs_blink_together_at_their_distance():
    """A close pair's partner is on in its mate's frames, 80-250 nm from it, and the density stays
    that of the emitters on per frame, partners included."""
    config = SimulationConfig(frame_size=(64, 64), n_frames=60, density_per_um2=0.5,
                              structure=StructureConfig(kind="close_pairs"))
    _, truth = simulate_stack(config, np.random.default_rng(3))
    emitters = truth.emitters
    nearest = []
    for _, frame in emitters.groupby("frame"):
        xy = frame[["x_nm", "y_nm"]].to_numpy()
        apart = np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1)) + np.eye(len(xy)) * 1e9
        nearest.extend(apart.min(1))
    nearest = np.asarray(nearest)
    paired = (nearest >= 80) & (nearest <= 250)
    assert 0.55 < paired.mean() < 0.8  # a partner for half the mates: two thirds of the emitters in pairs
    assert len(emitters) / config.n_frames / config.field_um2 == pytest.approx(0.5, rel=0.25)
    uniform = dataclasses.replace(config, structure=StructureConfig())
    _, truth = simulate_stack(uniform, np.random.default_rng(3))
    xy_by_frame = truth.emitters.groupby("frame")[["x_nm", "y_nm"]]
    near = [np.sort(np.hypot(*(g.to_numpy()[:, None] - g.to_numpy()[None]).transpose(2, 0, 1)), 1)[:, 1]
            for _, g in xy_by_frame if len(g) > 1]
    assert np.mean(np.concatenate(near) <= 250) < 0.15  # uniform emitters at 0.5 /µm² are seldom that close
    with pytest.raises(InputError, match="partner_distance_nm"):
        StructureConfig(kind="close_pairs", partner_distance_nm=(250, 80))


def test_config_overrides_and_ranges():
    raw = apply_overrides({"psf": {"sigma_nm": 120}}, ["psf.astigmatism=true", "structure.kind=rings",
                                                        'density_per_um2={"uniform": [0.5, 1.5]}'])
    drawn = draw_parameters(raw, np.random.default_rng(0))
    config = SimulationConfig.from_dict(drawn)
    assert config.psf.astigmatism and config.psf.sigma_nm == 120 and config.structure.kind == "rings"
    assert 0.5 <= config.density_per_um2 <= 1.5
    with pytest.raises(InputError, match="unknown key.*sigma"):
        SimulationConfig.from_dict({"sigma": 3})
    with pytest.raises(InputError, match="draw ranges"):
        SimulationConfig.from_dict(raw)


def test_dataset_layout_and_resume(tmp_path):
    raw = {"frame_size": 32, "n_frames": 4, "photons_mean": {"uniform": [1000, 3000]}}
    status = simulate_dataset(raw, tmp_path, n_samples=2, seed=9, log=lambda _: None)
    for index in range(2):
        sample = tmp_path / f"sample_32_{index:03d}"
        assert read_stack(sample / f"sample_32_{index:03d}.ome.tiff").frames.shape == (4, 32, 32)
        assert read_emitters_h5(sample / "emitters.h5").n_frames == 4
    on_disk = json.loads((tmp_path / "batch_status.json").read_text())
    assert on_disk == status
    assert [s["status"] for s in on_disk["samples"]] == ["done", "done"]
    photons = [s["parameters"]["photons_mean"] for s in on_disk["samples"]]
    assert photons[0] != photons[1] and all(1000 <= p <= 3000 for p in photons)
    stamp = (tmp_path / "sample_32_000" / "emitters.h5").stat().st_mtime_ns
    simulate_dataset(raw, tmp_path, n_samples=3, seed=9, log=lambda _: None)  # resumes
    assert (tmp_path / "sample_32_000" / "emitters.h5").stat().st_mtime_ns == stamp
    assert (tmp_path / "sample_32_002" / "emitters.h5").exists()
    with pytest.raises(InputError, match="another config or seed"):
        simulate_dataset(raw, tmp_path, n_samples=1, seed=10, log=lambda _: None)


def test_structured_background_contrast_and_mean():
    rng = np.random.default_rng(11)
    maps = [background_map((160, 160), 50.0, 0.0, 30.0, rng, contrast=10.0, pixel_size_nm=100.0) for _ in range(5)]
    for bg in maps:
        assert bg.mean() == pytest.approx(50.0, rel=1e-9)
        assert bg.max() / bg.min() == pytest.approx(10.0, rel=1e-9)
        # structure, not noise: neighbouring pixels differ by a small part of the range
        assert np.abs(np.diff(bg, axis=1)).max() < 0.1 * (bg.max() - bg.min())
    assert not np.allclose(maps[0], maps[1])  # each draw its own structure
    flat = background_map((64, 64), 50.0, 0.0, 30.0, rng)
    assert np.all(flat == 50.0)
    with pytest.raises(InputError, match="background_contrast"):
        SimulationConfig(background_contrast=0.5)


def test_structured_background_in_a_stack_and_its_truth():
    config = SimulationConfig(frame_size=96, n_frames=40, density_per_um2=0.2, background_photons=100.0,
                              background_contrast=8.0, camera=Camera(e_per_adu=1.0, read_noise_e=0.0))
    frames, truth = simulate_stack(config, np.random.default_rng(12))
    photons = config.camera.adu_to_photons(frames)
    median = np.median(photons, axis=0)  # the background where emitters are rare
    assert median.max() / median.min() > 5
    px = config.camera.pixel_size_nm
    rows, cols = (truth.emitters["y_nm"] // px).astype(int), (truth.emitters["x_nm"] // px).astype(int)
    ratio = truth.emitters["background"].to_numpy() / median[rows, cols]  # a fluorophore's own blinks raise
    assert np.median(ratio) == pytest.approx(1.0, abs=0.05)  # the median at its pixel now and then
    assert np.mean(np.abs(ratio - 1) < 0.2) > 0.8


def test_clusters_hold_their_points_near_few_centres():
    structure = StructureConfig(kind="clusters", n_clusters=3, cluster_sd_nm=80.0, label_sd_nm=0.0)
    x, y = sample_positions(structure, 600, (20_000.0, 20_000.0), np.random.default_rng(1))
    assert len(x) == 600 and x.min() >= 0 and x.max() < 20_000
    # three tight groups: most points lie within 300 nm of one of the three densest points' medians
    points = np.column_stack([x, y])
    far = np.ones(len(points), bool)
    for _ in range(3):
        centre = np.median(points[far][np.argsort(np.linalg.norm(points[far] - points[far][0], axis=1))[:100]], axis=0)
        far &= np.linalg.norm(points - centre, axis=1) > 300
    assert far.mean() < 0.02


def test_psf_halo_keeps_the_photons_and_widens_the_spot():
    """A halo moves photons out of the core (an Airy-like or slightly defocused spot), keeping the sum."""
    peaks, sums = [], []
    for halo in (0.0, 0.3):
        config = SimulationConfig(frame_size=32, n_frames=1, density_per_um2=0.0, background_photons=0.0,
                                  psf=PSF(sigma_nm=130.0, halo_fraction=halo))
        emitter = pd.DataFrame({"frame": [0], "x_nm": [1600.0], "y_nm": [1600.0], "z_nm": [0.0],
                                "photons": [1000.0]})
        image = _expected_photons(config, emitter, np.zeros((32, 32)), 0, 1)[0]
        peaks.append(image.max())
        sums.append(image.sum())
    assert sums[0] == pytest.approx(1000, rel=1e-3) and sums[1] == pytest.approx(1000, rel=1e-3)
    assert peaks[1] < 0.8 * peaks[0]  # 0.7 of the photons stay in the core
    with pytest.raises(ValueError, match="halo"):
        PSF(halo_fraction=1.0)


def test_uncalibrated_scmos_pixels_and_background_map():
    """Per-pixel offsets and hot pixels as a camera without maps records them; the background map
    that simulate_stack_and_background returns is the one the frames were made with."""
    camera = Camera(e_per_adu=0.5, read_noise_e=1.5)
    config = SimulationConfig(frame_size=64, n_frames=200, density_per_um2=0.0, background_photons=20.0,
                              background_contrast=5.0, camera=camera)
    rng = np.random.default_rng(2)
    frames, _, background = simulate_stack_and_background(config, rng)
    photons = camera.adu_to_photons(frames)
    assert np.corrcoef(photons.mean(0).ravel(), background.ravel())[0, 1] > 0.9
    noisy = camera.adu_to_photons(add_uncalibrated_pixel_noise(frames, camera, rng, hot_fraction=0.01))
    excess = noisy.var(0) / photons.var(0)
    assert 0.005 < np.mean(excess > 10) < 0.02  # the hot pixels, about 1 %
    assert np.median(excess) < 1.5  # most pixels little noisier
