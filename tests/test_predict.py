"""Prediction with the bundled model, on simulated stacks from seeds training never used."""

import dataclasses
import json
import threading
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import tifffile
import torch

from napari_var_emitter.cli import main
from napari_var_emitter.errors import InputError
from napari_var_emitter.evaluate.metrics import evaluate
from napari_var_emitter.io.camera import Camera
from napari_var_emitter.io.emitters_h5 import write_emitters_h5
from napari_var_emitter.io.localizations_csv import read_localizations_csv
from napari_var_emitter.io.tiff import write_ome_tiff
from napari_var_emitter.model.checkpoint import BUNDLED, BUNDLED_3D, BUNDLED_FAST, card_path, load_model, read_card
from napari_var_emitter.model.config import ModelConfig
from napari_var_emitter.predict import PredictOptions, predict_frames
from napari_var_emitter.predict.canonical import bin_factor, bin_photons, binned_sigma_px
from napari_var_emitter.predict.frames import CPU_PIXELS_PER_PASS
from napari_var_emitter.predict.envelope import Envelope, bundled_alternatives
from napari_var_emitter.predict.tiling import TileLayout, default_tile_px
from napari_var_emitter.psf import PSF
from napari_var_emitter.simulate.config import SimulationConfig
from napari_var_emitter.simulate.stack import simulate_stack

TEST_SEED = 5_500_000  # not a training seed (0) nor the training-time held-out seeds


@pytest.fixture(scope="module")
def model():
    return load_model()[0]


def _stack(size, n_frames, density, seed_offset=0):
    config = SimulationConfig(frame_size=size, n_frames=n_frames, density_per_um2=density, photons_mean=3000,
                              background_photons=30, camera=Camera(e_per_adu=0.5, read_noise_e=1.5))
    return simulate_stack(config, np.random.default_rng(TEST_SEED + seed_offset))


def test_bundled_model_finds_emitters_on_held_out_data(model):
    frames, truth = _stack(96, 6, 0.5)
    report = evaluate(predict_frames(model, frames, truth.camera).table, truth)
    assert report["jaccard"] > 75 and report["rmse_lateral_nm"] < 40
    assert abs(report["bias_x_nm"]) < 10 and abs(report["bias_y_nm"]) < 10


def test_tiles_stitch_without_duplicates_or_seams(model):
    frames, truth = _stack(200, 3, 0.5, seed_offset=1)  # 2 x 2 tiles of 128 px, padded frame
    result = predict_frames(model, frames, truth.camera, PredictOptions(tile_px=128))
    table = result.table
    assert table["x_nm"].between(0, 20000).all() and table["y_nm"].between(0, 20000).all()
    for frame, rows in table.groupby("frame"):  # no emitter detected twice: close pairs are two emitters
        xy = rows[["x_nm", "y_nm"]].to_numpy()
        true_xy = truth.emitters.loc[truth.emitters["frame"] == frame, ["x_nm", "y_nm"]].to_numpy()
        nearest_true = np.hypot(*(xy[:, None] - true_xy[None]).transpose(2, 0, 1)).argmin(1)
        d = np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1)) + np.eye(len(xy)) * 1e9
        for i, j in zip(*np.nonzero(d < 100)):
            assert nearest_true[i] != nearest_true[j]
    whole = evaluate(table, truth)
    seam = table[(table["x_nm"] - 12800).abs() < 400]  # detections near the tile boundary x = 128 px
    seam_truth = truth.emitters[(truth.emitters["x_nm"] - 12800).abs() < 400]
    assert whole["jaccard"] > 70
    assert len(seam) == pytest.approx(len(seam_truth), rel=0.25)
    assert [m.shape[1:] for m in result.scale_maps] == [(-(-200 // s),) * 2 for s in model.config.token_strides_px]



def test_tile_batches_and_bfloat16_autocast(model):
    frames, truth = _stack(192, 5, 0.5, seed_offset=2)
    tiles = PredictOptions(tile_px=64, refine=False)  # 9 tiles of 128 x 128 px per frame; the network's own output
    one_by_one = predict_frames(model, frames, truth.camera, dataclasses.replace(tiles, batch_size=1)).table
    # the 5 frames read together; at each of the 9 places their tiles run in passes of
    # CPU_PIXELS_PER_PASS: 4 tiles, then 1
    assert CPU_PIXELS_PER_PASS // 128**2 == 4
    together = predict_frames(model, frames, truth.camera, dataclasses.replace(tiles, batch_size=8)).table
    assert len(one_by_one) == len(together) > 0
    np.testing.assert_allclose(one_by_one[["x_nm", "y_nm"]], together[["x_nm", "y_nm"]], atol=0.05)
    full = evaluate(together, truth)
    bf16 = evaluate(predict_frames(model, frames, truth.camera, dataclasses.replace(tiles, amp=True)).table, truth)
    assert abs(bf16["jaccard"] - full["jaccard"]) < 3
    assert bf16["rmse_lateral_nm"] < full["rmse_lateral_nm"] + 3


def test_default_tiles_follow_the_attention():
    """Global attention (v1) costs the square of the tile: 256 x 256 px frames are cut into four
    128-px cores; a windowed or no-VAR model takes them whole."""
    v1 = ModelConfig(patch_nums=(5, 10, 20, 40, 40))
    for config, tiles in [(v1, 4), (ModelConfig(window_px=32), 1), (ModelConfig(var_prior=False), 1)]:
        layout = TileLayout.plan(256, 256, 32, default_tile_px(config), PredictOptions().margin_px)
        assert len(layout.origins) == tiles
    assert len(TileLayout.plan(512, 512, 32, default_tile_px(ModelConfig(window_px=32)), 32).origins) == 4


def test_sampled_generations_average_reproducibly(model):
    frames, truth = _stack(96, 4, 0.5, seed_offset=3)
    argmax = predict_frames(model, frames, truth.camera, PredictOptions(refine=False))
    sampled = predict_frames(model, frames, truth.camera, PredictOptions(samples=3, refine=False))
    assert sampled.table.equals(predict_frames(model, frames, truth.camera,
                                               PredictOptions(samples=3, refine=False)).table)  # seeded
    assert all(((m >= 0) & (m <= 1)).all() for m in sampled.scale_maps)
    assert any(not np.array_equal(a, b) for a, b in zip(argmax.scale_maps, sampled.scale_maps))
    assert abs(evaluate(sampled.table, truth)["jaccard"] - evaluate(argmax.table, truth)["jaccard"]) < 5
    with pytest.raises(InputError, match="samples"):
        PredictOptions(samples=0)


def test_predict_cli_csv_and_each_map_mode(tmp_path):
    frames, truth = _stack(64, 3, 0.5, seed_offset=2)
    write_ome_tiff(tmp_path / "s.ome.tiff", frames, truth.camera)
    write_emitters_h5(tmp_path / "e.h5", truth)
    stack, out = str(tmp_path / "s.ome.tiff"), tmp_path / "p.csv"
    scales = [f"scale_{s}" for s in range(5)]
    # --maps alone: progressive, every scale's map
    assert main(["predict", stack, "--out", str(out), "--maps", str(tmp_path / "m.h5"), "--device", "cpu"]) == 0
    table = read_localizations_csv(out)
    assert {"photons", "uncertainty_nm", "probability", "background"} <= set(table.columns)
    assert table["probability"].between(0.3, 1).all() and (table["uncertainty_nm"] > 0).all()
    with h5py.File(tmp_path / "m.h5") as f:
        assert sorted(f) == scales and f.attrs["mode"] == "progressive"
        assert [f[s].shape for s in scales] == [(3, 2, 2), (3, 4, 4), (3, 8, 8), (3, 16, 16), (3, 16, 16)]
        assert [f[s].attrs["stride_px"] for s in scales] == [32, 16, 8, 4, 4]
    # --mode without --maps: the maps go beside the table
    assert main(["predict", stack, "--out", str(out), "--mode", "super_resolution", "--device", "cpu",
                 "--overwrite"]) == 0
    with h5py.File(tmp_path / "p.maps.h5") as f:
        assert sorted(f) == ["output_map"] and f.attrs["mode"] == "super_resolution"
        assert f["output_map"].shape == (3, 128, 128) and f["output_map"].attrs["cell_px"] == 0.5
        peaks = f["output_map"][:]
    assert main(["predict", stack, "--out", str(out), "--mode", "both", "--maps", str(tmp_path / "b.h5"),
                 "--overwrite"]) == 0
    with h5py.File(tmp_path / "b.h5") as f:
        assert sorted(f) == ["output_map", *scales] and f.attrs["mode"] == "both"
        np.testing.assert_array_equal(f["output_map"][:], peaks)
    # the output map is the detection probability: high where the table has a localisation
    rows, cols = (table["y_nm"] / 50).astype(int), (table["x_nm"] / 50).astype(int)
    assert np.median(peaks[table["frame"], rows, cols]) > 0.1 > np.median(peaks)
    assert main(["evaluate", str(out), str(tmp_path / "e.h5")]) == 0
    # the fast model has no per-scale maps: asked for them, it says so before any work (its file held none)
    fast = tmp_path / "fast.csv"
    assert main(["predict", stack, "--out", str(fast), "--model", "fast", "--mode", "progressive"]) == 2
    assert not fast.exists() and not (tmp_path / "fast.maps.h5").exists()
    assert main(["predict", stack, "--out", str(fast), "--model", "fast", "--mode", "super_resolution"]) == 0
    with h5py.File(tmp_path / "fast.maps.h5") as f:
        assert sorted(f) == ["output_map"]


def test_predict_errors(tmp_path, capsys):
    frames, truth = _stack(64, 1, 0.5)
    write_ome_tiff(tmp_path / "s.ome.tiff", frames, truth.camera)
    args = ["predict", str(tmp_path / "s.ome.tiff"), "--out", str(tmp_path / "p.csv")]
    if not torch.cuda.is_available():
        assert main(args + ["--device", "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err
    assert main(args + ["--samples", "0"]) == 2
    assert "samples and batch size must be 1 or more" in capsys.readouterr().err
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    (tmp_path / "bad.json").write_text("{}")
    assert main(args + ["--model", str(tmp_path / "bad.safetensors")]) == 2
    assert "not a napari-var-emitter model" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()


def test_read_ahead_raises_a_bad_frame_at_its_batch_and_stops(model):
    """The next batch is read in a background thread: a NaN there fails the call naming its frame
    (numbered in the stack), after the batches before it ran (without the refinement, whose thread
    may still hold the batch before), and leaves no reading or refining thread behind."""
    frames, truth = _stack(32, 5, 0.5, seed_offset=4)
    frames = frames.astype(np.float32)
    frames[3, 4, 4] = np.nan
    for refine in (False, True):
        batches = []
        with pytest.raises(InputError, match=r"frame 104 \(1-based\) contains NaN"):
            predict_frames(model, frames, truth.camera, PredictOptions(batch_size=2, refine=refine), first_frame=100,
                           progress=lambda done, total, seen: batches.append(done))
        assert max(batches) == (0 if refine else 2)  # refined: the first batch waited for the next, 0 frames done
        assert not [t for t in threading.enumerate() if t.name.startswith(("read-ahead", "refine"))]


def test_a_cancel_is_heard_between_passes_of_tiles(model):
    """progress is called after every pass of tiles through the model, not only after a batch
    of frames, with the frames through the network in parts of frames: a Cancel (progress
    raising) stops a batch of large frames after its first tiles, and the rate moves with them."""
    frames, truth = _stack(160, 2, 0.5, seed_offset=5)
    options = PredictOptions(batch_size=2, tile_px=64, margin_px=32, refine=False)  # 9 tile places, 2 frames a pass
    calls = []
    predict_frames(model, frames, truth.camera, options, progress=lambda *report: calls.append(report))
    assert [c[:2] for c in calls] == [(0, 2)] * 9 + [(2, 2)] and calls[-1] == (2, 2, 2)
    np.testing.assert_allclose([c[2] for c in calls[:9]], 2 * np.arange(1, 10) / 9)

    class Stop(Exception):
        pass

    def stop_at_second(*report):
        calls.append(report)
        if len(calls) == 2:
            raise Stop

    calls = []
    with pytest.raises(Stop):
        predict_frames(model, frames, truth.camera, options, progress=stop_at_second)
    assert [c[:2] for c in calls] == [(0, 2)] * 2


def test_threads_share_one_model_without_interfering(model):
    """Generation keeps its KV caches per call: two threads predicting with one model at once get
    what each gets alone (a cache kept on the modules would mix their scales)."""
    stacks = [_stack(64, 4, density, seed_offset=10 + i) for i, density in enumerate((0.3, 1.5))]
    options = PredictOptions(batch_size=1)
    alone = [predict_frames(model, frames, truth.camera, options).table for frames, truth in stacks]
    together, barrier = [[], []], threading.Barrier(2)

    def work(i):
        frames, truth = stacks[i]
        barrier.wait()
        for _ in range(3):
            together[i].append(predict_frames(model, frames, truth.camera, options).table)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(alone[0]) != len(alone[1])
    for i in range(2):
        assert len(together[i]) == 3
        for table in together[i]:
            pd.testing.assert_frame_equal(table, alone[i])


def test_the_fast_model_by_name_on_the_command_line(tmp_path):
    """`--model fast` runs the bundled fast 2-D model (a U-Net, no VAR prior), which finds the
    emitters of held-out data as the bundled model does, and states its wider training ranges."""
    assert PredictOptions(model="fast").weights == BUNDLED_FAST and PredictOptions().weights == BUNDLED
    config, card = read_card(BUNDLED_FAST)
    assert not config.var_prior and config.encoder_levels >= 2
    assert Envelope.from_card(card).photons == (100.0, 20000.0)  # Picasso's bright spots lie inside
    frames, truth = _stack(96, 6, 0.5)
    write_ome_tiff(tmp_path / "s.ome.tiff", frames, truth.camera)
    out = tmp_path / "fast.csv"
    assert main(["predict", str(tmp_path / "s.ome.tiff"), "--out", str(out), "--model", "fast", "--device", "cpu"]) == 0
    report = evaluate(read_localizations_csv(out), truth)
    assert report["jaccard"] > 75 and report["rmse_lateral_nm"] < 40


def test_envelope_from_the_bundled_card(tmp_path):
    envelope = Envelope.from_card(load_model()[1])
    assert envelope.pixel_size_nm == (100.0, 100.0) and envelope.psf_sigma_px == (1.0, 1.6)
    assert envelope.camera_warnings(Camera(e_per_adu=0.5)) == []
    (pixel,) = envelope.camera_warnings(Camera(pixel_size_nm=160.0))
    assert "pixel size 160 nm" in pixel and "narrower" in pixel and "fine-tune" in pixel
    assert envelope.camera_warnings(Camera(pixel_size_nm=65.0, e_per_adu=0.5)) == []  # wider spots are binned
    EMCCD = Camera(type="EMCCD", em_gain=100.0)
    typical = pd.DataFrame({"photons": [1500.0, 2500.0, 3000.0], "background": [40.0, 50.0, 60.0]})
    assert envelope.measured_warnings(typical, EMCCD) == []
    (dim,) = envelope.measured_warnings(typical.assign(photons=[150.0, 204.0, 260.0]), EMCCD)
    assert "median 204 photons" in dim and "below" in dim and "e⁻/ADU" in dim and "EM gain" in dim
    # frames binned 2 x 2 in front of the network: its 10-120 photons per (binned) pixel are 2.5-30 per camera pixel
    faint = typical.assign(background=[3.0, 4.0, 5.0])
    assert "median 4 background photons/px is below" in envelope.measured_warnings(faint, EMCCD)[0]
    assert envelope.measured_warnings(faint, EMCCD, bin_px=2) == []
    (fainter,) = envelope.measured_warnings(faint.assign(background=[0.8, 1.0, 1.2]), EMCCD, bin_px=2)
    assert "(2.5–30)" in fainter
    # the values that convert this camera's pixels are named: its maps where it has them
    for name, value in (("gain", 0.5), ("offset", 100.0), ("variance", 4.0)):
        np.save(tmp_path / f"{name}.npy", np.full((8, 8), value, np.float32))
    maps = Camera(gain_map=str(tmp_path / "gain.npy"), offset_map=str(tmp_path / "offset.npy"),
                  variance_map=str(tmp_path / "variance.npy"))
    (dim,) = envelope.measured_warnings(typical.assign(photons=[150.0, 204.0, 260.0]), maps)
    assert "gain map" in dim and "offset map" in dim and "EM gain" not in dim and "baseline" not in dim
    (bright_bg,) = envelope.measured_warnings(typical.assign(background=[900.0, 1000.0, 1100.0]), EMCCD)
    assert "background" in bright_bg and "above" in bright_bg and "baseline" in bright_bg
    brightest = pd.DataFrame({"photons": [1500.0] * 8 + [14_000.0, 20_000.0], "background": [50.0] * 10})
    (bright,) = envelope.measured_warnings(brightest, EMCCD)  # the median in range, the brightest tenth not
    assert "a tenth of the localisations carry more than" in bright and "may miss" in bright
    assert "fast model" not in bright  # named only where the run says which model it used
    assert envelope.measured_warnings(typical.iloc[:0], EMCCD) == []
    assert Envelope.from_card({}) is None
    # the other bundled model is named where its training covers what was measured, and only then
    others = bundled_alternatives(BUNDLED)
    (bright,) = envelope.measured_warnings(brightest, EMCCD, others)
    assert "try the fast model (--model fast)" in bright
    (said,) = envelope.measured_warnings(brightest, EMCCD, bundled_alternatives(BUNDLED, in_widget=True))
    assert "try the fast model ('fast model' under model above)" in said and "--model" not in said
    assert "100–20,000 photons" in bright and "fine-tune" in bright
    # a range estimated from a stack (a fine-tune's) is said rounded, not to six digits
    tuned = dataclasses.replace(envelope, photons=(67.0055, 201.016))
    (dim,) = tuned.measured_warnings(typical.assign(photons=[20.0, 25.0, 30.0]), EMCCD)
    assert "median 25 photons per localisation is below what the model was trained on (67–201)" in dim
    # a model fine-tuned on one stack, run on another, says so; on its own stack, nothing
    tuned = dataclasses.replace(tuned, fine_tuned_on="stack A")
    assert tuned.stack_warnings("stack A") == [] and envelope.stack_warnings("B") == []
    (other,) = tuned.stack_warnings("stack B")
    assert "fine-tuned on 'stack A', not on 'stack B'" in other and "use the bundled model (the default)" in other
    (very_bright,) = envelope.measured_warnings(brightest.assign(photons=[1500.0] * 8 + [40_000.0] * 2), EMCCD,
                                                     others)
    assert "fast model" not in very_bright and "fine-tune" in very_bright
    (bright_bg,) = envelope.measured_warnings(typical.assign(background=[900.0, 1000.0, 1100.0]), EMCCD, others)
    assert "try the fast model" in bright_bg
    fast = Envelope.from_card(read_card(BUNDLED_FAST)[1])
    (dim,) = fast.measured_warnings(typical.assign(photons=[20.0, 30.0, 40.0]), EMCCD,
                                    bundled_alternatives(BUNDLED_FAST))
    assert "bundled model" not in dim  # trained on 800-6000: no help
    assert bundled_alternatives(BUNDLED_3D) == []


def test_envelope_warns_of_scmos_read_noise_above_the_trained_range(tmp_path):
    """The bundled 3-D model's card states its sCMOS read noise (0.5-3 e⁻): a camera well above
    it (as given, or the median of its variance map) is warned of; one inside it, or an EMCCD, is
    not. v1's card states none, so it never warns."""
    envelope = Envelope.from_card(read_card(BUNDLED_3D)[1])
    assert envelope.scmos_read_noise_e == (0.5, 3.0)
    assert envelope.camera_warnings(Camera(e_per_adu=0.5, read_noise_e=3.0)) == []
    (noisy,) = envelope.camera_warnings(Camera(e_per_adu=0.5, read_noise_e=6.0))
    assert "read noise 6 e⁻ rms (as given)" in noisy and "0.5–3 e⁻" in noisy and "not ADU" in noisy
    assert envelope.camera_warnings(Camera(e_per_adu=10.0, em_gain=100.0, read_noise_e=50.0, type="EMCCD")) == []
    variance_adu2 = np.full((8, 8), (2.0 / 0.5) ** 2)  # 2 e⁻ at 0.5 e⁻/ADU (2 ADU/e⁻): in range
    np.save(tmp_path / "quiet.npy", variance_adu2)
    quiet = Camera(e_per_adu=0.5, read_noise_e=9.0, variance_map=str(tmp_path / "quiet.npy"))
    assert envelope.camera_warnings(quiet) == []  # the map's median, not the one value
    np.save(tmp_path / "noisy.npy", variance_adu2 * 9)  # 6 e⁻
    (mapped,) = envelope.camera_warnings(Camera(e_per_adu=0.5, variance_map=str(tmp_path / "noisy.npy")))
    assert "read noise 6 e⁻ rms (median over the variance map)" in mapped
    assert Envelope.from_card(load_model()[1]).scmos_read_noise_e is None


def test_predict_cli_says_when_a_model_fine_tuned_on_another_stack_is_used(tmp_path):
    """A model's card names the stack it was fine-tuned on (the Fine-tune widget writes it): run on
    another file, the CLI says so; on that file, it does not."""
    import shutil

    tuned = tmp_path / "tuned" / "model.safetensors"
    tuned.parent.mkdir()
    shutil.copy(BUNDLED_FAST, tuned)
    document = json.loads(card_path(BUNDLED_FAST).read_text())
    document["card"]["fine_tuned_on"] = {"stack": "a.ome.tiff", "data": "self-calibrated"}
    card_path(tuned).write_text(json.dumps(document))
    frames, truth = _stack(64, 2, 0.5, seed_offset=5)
    for name in ("a.ome.tiff", "b.ome.tiff"):
        write_ome_tiff(tmp_path / name, frames, truth.camera)
    for name, said in (("a.ome.tiff", False), ("b.ome.tiff", True)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert main(["predict", str(tmp_path / name), "--out", str(tmp_path / f"{name}.csv"), "--model",
                         str(tuned), "--device", "cpu"]) == 0
        messages = [str(w.message) for w in caught if "fine-tuned on" in str(w.message)]
        assert messages == (["the model was fine-tuned on 'a.ome.tiff', not on 'b.ome.tiff': it knows that stack's "
                             "PSF, photons and background; for another sample or microscope, use the bundled model "
                             "(the default) or fine-tune the model on this stack (Fine-tune widget, "
                             "self-calibrated)"] if said else [])


def test_predict_cli_warns_when_the_camera_gain_is_wrong(tmp_path):
    frames, truth = _stack(64, 4, 1.0, seed_offset=4)
    write_ome_tiff(tmp_path / "s.ome.tiff", frames, truth.camera)  # e_per_adu 0.5 in the file
    args = ["predict", str(tmp_path / "s.ome.tiff"), "--out", str(tmp_path / "p.csv"), "--device", "cpu"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(args) == 0
    assert [str(w.message) for w in caught if issubclass(w.category, UserWarning)] == []
    # e-/ADU 8x too small (a sheet's value misread): photons per localisation come out 8x too low
    with pytest.warns(UserWarning, match=r"median [\d.]+ photons per localisation is below .*e⁻/ADU"):
        assert main(args + ["--e-per-adu", "0.0625", "--overwrite"]) == 0


def test_scmos_pixel_maps_keep_hot_pixels_from_becoming_detections(model, tmp_path):
    """Simulated sCMOS with its own per-pixel offset, gain and read noise (2 % hot pixels at
    200-2,000 ADU²), predicted through the camera's maps: every emitter kept, no detection on a
    hot pixel away from an emitter. (The real-camera check is benchmarks/scmos_real.py.)"""
    from napari_var_emitter.simulate.camera_noise import write_scmos_maps

    rng = np.random.default_rng(TEST_SEED + 40)
    maps = write_scmos_maps(tmp_path, (64, 64), rng, hot_fraction=0.02)
    camera = Camera(pixel_size_nm=100, baseline_adu=100, e_per_adu=1 / 2.1, read_noise_e=1.1, **maps)
    config = SimulationConfig(frame_size=64, n_frames=8, density_per_um2=0.3, photons_mean=2000,
                              background_photons=20, camera=camera)
    frames, truth = simulate_stack(config, rng)
    hot = np.flatnonzero(np.load(maps["variance_map"]) > 100)
    assert hot.size > 50
    table = predict_frames(model, frames, camera).table
    cells = (table["y_nm"] // 100).astype(int) * 64 + (table["x_nm"] // 100).astype(int)
    report = evaluate(table, truth)
    assert report["jaccard"] > 85  # percent
    far = [np.hypot(*(truth.emitters.loc[truth.emitters["frame"] == row.frame, ["x_nm", "y_nm"]].to_numpy()
                      - (row.x_nm, row.y_nm)).T).min(initial=np.inf) > 150 for row in table.itertuples()]
    assert not (np.isin(cells, hot) & np.array(far)).any()


SCMOS_REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "external" / "storm-analysis-scmos-real"


@pytest.mark.skipif(not SCMOS_REAL.is_dir(), reason="../shared/data/external is not here")
def test_out_of_range_warning_fires_on_the_real_scmos_stack(tmp_path, capsys):
    """Real sCMOS STORM frames (validation data: looked at, never tuned on), predicted through
    the CLI with the camera a user would type: it warns about the photons; about the pixel size
    only where no PSF sigma is measured (the refinement off): the measured sigma says more. Its
    first four frames, as the camera wrote them (a plain TIFF), keep the test short."""
    stack = tmp_path / "first_4_frames.tif"
    tifffile.imwrite(stack, tifffile.imread(SCMOS_REAL / "sample_11frames.tif")[:4], photometric="minisblack")
    for refine in (True, False):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert main(["predict", str(stack), "--out", str(tmp_path / f"locs_{refine}.csv"), "--pixel-size", "160",
                         "--baseline", "90.4", "--adu-per-e", "2.11", "--read-noise", "1.1",
                         "--camera-type", "sCMOS", "--qe", "1"] + ([] if refine else ["--no-refine"])) == 0
        messages = [str(w.message) for w in caught]
        assert any("pixel size 160 nm" in m for m in messages) != refine
        assert any("photons per localisation is below" in m for m in messages)
        assert ("PSF sigma" in capsys.readouterr().err) == refine


def test_the_binning_follows_the_psf_and_keeps_photons():
    trained = (1.0, 1.6)  # the bundled model's PSF sigmas (px)
    assert bin_factor(1.3, trained) == 1 and bin_factor(0.8, trained) == 1 and bin_factor(None, trained) == 1
    assert bin_factor(2.0, trained) == 2 and bin_factor(4.0, trained) == 3
    assert binned_sigma_px(2.0, 2) == 1.0
    photons = torch.rand(2, 1, 9, 8)
    binned = bin_photons(photons, 2)
    assert binned.shape == (2, 1, 5, 4)
    torch.testing.assert_close(binned[..., :4, :], photons[..., :8, :].reshape(2, 1, 4, 2, 4, 2).sum((3, 5)))
    torch.testing.assert_close(binned[..., 4, :], 2 * photons[..., 8, :].reshape(2, 1, 4, 2).sum(-1))  # last row twice


def test_spots_wider_than_the_model_knows_are_binned_into_its_range(model):
    """PSF sigma 2 px (the bundled model saw 1-1.6 px): binned 2 x 2 in front of the network, the
    maps follow, the refinement fits the camera's own pixels and every position stays in the frame."""
    camera = Camera(pixel_size_nm=100.0, e_per_adu=0.5, read_noise_e=1.5)
    config = SimulationConfig(frame_size=(63, 64), n_frames=6, density_per_um2=0.3, photons_mean=5000.0,
                              background_photons=20.0, psf=PSF(sigma_nm=200.0), camera=camera)
    frames, truth = simulate_stack(config, np.random.default_rng(123))
    options = PredictOptions(psf_sigma_nm=200.0, output_map=True)
    plain = predict_frames(model, frames, camera, dataclasses.replace(options, bin_px=1))
    binned = predict_frames(model, frames, camera, options)
    assert binned.strides_px == tuple(2 * s for s in plain.strides_px) and binned.output_cell_px == 1.0
    assert binned.output_map.shape == (6, 64, 64) and binned.scale_maps[-1].shape == (6, 8, 8)
    assert (binned.table["y_nm"] < 6300).all() and (binned.table["fitted"] == 1).mean() > 0.8
    better, worse = evaluate(binned.table, truth), evaluate(plain.table, truth)
    assert better["jaccard"] > max(90.0, worse["jaccard"] + 10)
    assert better["rmse_over_crlb"] < 1.5
    # the network's own background (refinement off) is per camera pixel too, not per binned pixel (80)
    unrefined = predict_frames(model, frames, camera, dataclasses.replace(options, refine=False)).table
    assert 12.0 < unrefined["background"].median() < 30.0


def test_spots_narrower_than_the_bundled_model_knows_name_the_fast_model_where_it_knows_them():
    """Picasso's test movie (0.82 px) lies below the bundled model's PSF range (1-1.6 px) and within
    the fast model's (0.9-1.5 px, 10 % tolerance): the note names it; far narrower spots do not."""
    from napari_var_emitter.predict.frames import _geometry_note

    model, camera = load_model()[0], Camera(pixel_size_nm=100.0, e_per_adu=0.5)
    note, caution = _geometry_note(model, PredictOptions(psf_sigma_nm=82.0), camera, 0.82)
    assert "narrower than any" in note and "try the fast model (--model fast)" in note and caution
    assert "fine-tune" in note
    in_widget, _ = _geometry_note(model, PredictOptions(psf_sigma_nm=82.0), camera, 0.82, in_widget=True)
    assert "the fast model ('fast model' under model above)" in in_widget and "--model" not in in_widget
    note, caution = _geometry_note(model, PredictOptions(psf_sigma_nm=50.0), camera, 0.5)
    assert "narrower than any" in note and "fast model" not in note and caution
    assert _geometry_note(model, PredictOptions(psf_sigma_nm=130.0), camera, 1.3) == ("", False)


def test_spots_narrower_than_the_model_knows_are_a_caution_wherever_the_sigma_is_said(model):
    """The estimated PSF sigma of spots 0.7 px wide (the bundled model saw 1-1.6 px) comes with a
    caution (a widget shows it as a warning, the CLI warns), and predict_frames warns; spots it
    knows are information only, and it is silent about them."""
    from napari_var_emitter.predict.frames import with_psf_sigma

    camera = Camera(pixel_size_nm=100.0, e_per_adu=0.5, read_noise_e=1.5)
    for sigma_nm, caution in ((70.0, True), (130.0, False)):
        config = SimulationConfig(frame_size=64, n_frames=8, density_per_um2=0.5, photons_mean=3000,
                                  background_photons=30, psf=PSF(sigma_nm=sigma_nm), camera=camera)
        frames, truth = simulate_stack(config, np.random.default_rng(TEST_SEED + 40))
        options, note = with_psf_sigma(PredictOptions(), model, frames, truth.camera)
        assert options.refine and note.caution == caution
        assert ("narrower than any the model was trained on" in note.text) == caution
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            predict_frames(model, frames, truth.camera)
        assert any("narrower than any" in str(w.message) for w in said) == caution


def test_a_run_refined_in_parts_gives_what_one_refinement_of_all_its_frames_gives(model):
    """The last chunk of a run is refined in two parts at once, the network done (frames 0-3 and
    4-9 here): the table is what one refinement of every frame gives."""
    from napari_var_emitter.fit.refine import refine_table
    from napari_var_emitter.io.camera import frames_to_photons
    from napari_var_emitter.predict.frames import refinement_spots

    frames, truth = _stack(64, 10, 1.0, seed_offset=5)
    options = PredictOptions(batch_size=2, psf_sigma_nm=130.0)
    network = predict_frames(model, frames, truth.camera, dataclasses.replace(options, refine=False)).table
    whole = refine_table(network, frames_to_photons(frames, truth.camera), truth.camera,
                         refinement_spots(options, model.config, truth.camera), options.phantom_fdr, options.batch_size)
    in_parts = predict_frames(model, frames, truth.camera, options).table
    order = ["frame", "y_nm", "x_nm"]
    whole, in_parts = (t.sort_values(order, ignore_index=True) for t in (whole, in_parts))
    assert len(in_parts) == len(whole) > 50 and set(in_parts["frame"]) == set(range(10))
    columns = ["x_nm", "y_nm", "photons", "uncertainty_x_nm", "significance"]
    np.testing.assert_allclose(in_parts[columns], whole[columns], rtol=1e-6, atol=1e-6)


def test_progress_counts_frames_done_and_those_through_the_network_ahead_of_their_refinement():
    from napari_var_emitter.plugin.predict_run import Progress

    progress = Progress(10, doing="estimating the PSF sigma: ")
    report = progress.chunk(0)
    report(0, 10, 4)  # four frames through the network, their refinement waiting for more
    text = progress.describe()
    assert text.startswith("estimating the PSF sigma: 0 / 10 frames (4 more through the network, being refined)")
    assert "frames/s" in text and "left" in text
    report(4, 10)  # a refinement done (no count of the network's given): as many through it
    assert progress.describe().startswith("estimating the PSF sigma: 4 / 10 frames ·")
    report(4, 10, 7.5)  # half a frame's tiles through as well: whole frames said, the rate from all
    assert progress.describe().startswith("estimating the PSF sigma: 4 / 10 frames (3 more through the network")
    assert progress.rate() > 0
    report(4, 10, 10)  # every frame through the network: no "0 s left" while the last are refined
    assert progress.describe() == ("estimating the PSF sigma: 4 / 10 frames (6 more through the network, being "
                                   "refined) · finishing")
    report(10, 10)
    assert progress.describe() == "estimating the PSF sigma: 10 / 10 frames · finishing"


def test_a_long_run_is_told_of_a_faster_model_and_a_short_one_is_not():
    import time as clock

    from napari_var_emitter.plugin.predict_run import HINT_AFTER_S, Progress

    progress = Progress(10_000, hint="the fast model runs faster")
    progress.started = clock.perf_counter() - 10.0  # 10 s for 10 frames: 1 frame/s
    progress.chunk(0)(10, 10_000)
    assert progress.describe().endswith("left · the fast model runs faster")  # hours left
    progress.chunk(0)(10_000 - HINT_AFTER_S // 2, 10_000)
    assert "fast model" not in progress.describe()  # seconds left
