"""Prediction with the bundled model, on simulated stacks from seeds training never used."""

import h5py
import numpy as np
import pytest
import torch

from napari_var_emitter.cli import main
from napari_var_emitter.evaluate.metrics import evaluate
from napari_var_emitter.io.camera import Camera
from napari_var_emitter.io.emitters_h5 import write_emitters_h5
from napari_var_emitter.io.localizations_csv import read_localizations_csv
from napari_var_emitter.io.tiff import write_ome_tiff
from napari_var_emitter.model.checkpoint import load_model
from napari_var_emitter.model.inference import predict_frames
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
    result = predict_frames(model, frames, truth.camera, tile_px=128)
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
    frames, truth = _stack(200, 2, 0.5, seed_offset=2)  # 4 tiles per frame
    one_by_one = predict_frames(model, frames, truth.camera, batch_size=1).table
    together = predict_frames(model, frames, truth.camera, batch_size=8).table  # all 8 tiles in one batch
    assert len(one_by_one) == len(together) > 0
    np.testing.assert_allclose(one_by_one[["x_nm", "y_nm"]], together[["x_nm", "y_nm"]], atol=0.05)
    full = evaluate(together, truth)
    bf16 = evaluate(predict_frames(model, frames, truth.camera, amp=True).table, truth)
    assert abs(bf16["jaccard"] - full["jaccard"]) < 3
    assert bf16["rmse_lateral_nm"] < full["rmse_lateral_nm"] + 3

def test_sampled_generations_average_reproducibly(model):
    frames, truth = _stack(96, 4, 0.5, seed_offset=3)
    argmax = predict_frames(model, frames, truth.camera)
    sampled = predict_frames(model, frames, truth.camera, samples=3)
    assert sampled.table.equals(predict_frames(model, frames, truth.camera, samples=3).table)  # seeded
    assert all(((m >= 0) & (m <= 1)).all() for m in sampled.scale_maps)
    assert any(not np.array_equal(a, b) for a, b in zip(argmax.scale_maps, sampled.scale_maps))
    assert abs(evaluate(sampled.table, truth)["jaccard"] - evaluate(argmax.table, truth)["jaccard"]) < 5
    with pytest.raises(ValueError, match="samples"):
        predict_frames(model, frames, truth.camera, samples=0)


def test_predict_cli_csv_and_maps(tmp_path):
    frames, truth = _stack(64, 3, 0.5, seed_offset=2)
    write_ome_tiff(tmp_path / "s.ome.tiff", frames, truth.camera)
    write_emitters_h5(tmp_path / "e.h5", truth)
    out = tmp_path / "p.csv"
    assert main(["predict", str(tmp_path / "s.ome.tiff"), "--out", str(out), "--maps", str(tmp_path / "m.h5"),
                 "--mode", "super_resolution", "--device", "cpu"]) == 0
    table = read_localizations_csv(out)
    assert {"photons", "uncertainty_nm", "probability", "background"} <= set(table.columns)
    assert table["probability"].between(0.3, 1).all() and (table["uncertainty_nm"] > 0).all()
    with h5py.File(tmp_path / "m.h5") as f:
        assert [f[f"scale_{s}"].shape for s in range(4)] == [(3, 2, 2), (3, 4, 4), (3, 8, 8), (3, 16, 16)]
        assert [f[f"scale_{s}"].attrs["stride_px"] for s in range(4)] == [32, 16, 8, 4]
        assert f["output_map"].shape == (3, 128, 128)
    assert main(["evaluate", str(out), str(tmp_path / "e.h5")]) == 0


def test_predict_errors(tmp_path, capsys):
    frames, truth = _stack(64, 1, 0.5)
    write_ome_tiff(tmp_path / "s.ome.tiff", frames, truth.camera)
    args = ["predict", str(tmp_path / "s.ome.tiff"), "--out", str(tmp_path / "p.csv")]
    if not torch.cuda.is_available():
        assert main(args + ["--device", "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err
    assert main(args + ["--samples", "0"]) == 2
    assert "--samples and --batch-size must be 1 or more" in capsys.readouterr().err
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    (tmp_path / "bad.json").write_text("{}")
    assert main(args + ["--model", str(tmp_path / "bad.safetensors")]) == 2
    assert "not a napari-var-emitter model" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()
