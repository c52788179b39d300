"""`var-emitter train` end to end on a tiny model for a few steps (fast, not for accuracy)."""

import dataclasses
import json
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from napari_var_emitter.cli import main
from napari_var_emitter.errors import InputError
from napari_var_emitter.io.camera import Camera
from napari_var_emitter.io.psf_file import write_psf_file
from napari_var_emitter.io.tiff import write_ome_tiff
from napari_var_emitter.model.checkpoint import BUNDLED, BUNDLED_3D, load_model
from napari_var_emitter.model.condition import calibration_vector
from napari_var_emitter.predict import PredictOptions, predict_frames
from napari_var_emitter.predict.envelope import Envelope
from napari_var_emitter.psf import PSF, DefocusCurve
from napari_var_emitter.simulate.config import SimulationConfig
from napari_var_emitter.simulate.stack import simulate_stack
from napari_var_emitter.train.config import TrainConfig
from napari_var_emitter.train.data import LabelledSource, SimulatedSource
from napari_var_emitter.train.loop import train
from napari_var_emitter.train.prefetch import PrefetchedSource

TINY = {
    "model": {"vocab_size": 32, "cvq": 8, "embed_dim": 32, "num_heads": 2, "num_layers": 1,
              "image_channels": 8, "tokenizer_channels": 8},
    "training": {"tokenizer_steps": 3, "steps": 4, "batch_size": 2, "warmup_steps": 1, "eval_every": 4,
                 "checkpoint_every": 2},
}


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY))
    return path


def test_train_on_the_fly_writes_model_log_and_curves(tmp_path, tiny_config):
    out = tmp_path / "run"
    assert main(["train", "--config", str(tiny_config), "--out", str(out), "--device", "cpu"]) == 0
    model, card = load_model(out / "model.safetensors")
    assert model.config.embed_dim == 32 and card["training"]["steps"] == 4
    assert {"low_jaccard", "medium_jaccard", "high_jaccard"} <= set(card["heldout"])
    log = pd.read_csv(out / "log.csv")
    assert list(log["step"]) == list(range(7))
    assert {"code_usage", "ce_s0", "ce_s3", "acc_s3", "low_jaccard"} <= set(log.columns)
    # each step's wait for its batch is part of that step's time (wall_s counts the steps)
    step_s = np.diff(np.r_[0.0, log["wall_s"].to_numpy()])
    assert log["data_s"].sum() > 0 and (log["data_s"] >= 0).all() and (log["data_s"] <= step_s + 0.01).all()
    assert (out / "training_curves.png").stat().st_size > 1000


def test_resume_continues_without_repeating_steps(tmp_path):
    short, longer = tmp_path / "short.json", tmp_path / "long.json"
    short.write_text(json.dumps({**TINY, "training": {**TINY["training"], "steps": 2, "checkpoint_every": 4}}))
    longer.write_text(json.dumps(TINY))
    out = tmp_path / "run"
    assert main(["train", "--config", str(short), "--out", str(out)]) == 0  # steps 0..4, saved at 4 and 5
    assert main(["train", "--config", str(longer), "--out", str(out), "--resume"]) == 0
    assert pd.read_csv(out / "log.csv")["step"].tolist() == list(range(7))


def test_a_run_stopped_after_its_minutes_resumes_where_it_stopped(tmp_path, tiny_config):
    out = tmp_path / "run"
    assert main(["train", "--config", str(tiny_config), "--out", str(out), "--minutes", "0.0001"]) == 0
    assert (out / "train_state.pt").exists() and not (out / "model.safetensors").exists()
    assert pd.read_csv(out / "log.csv")["step"].tolist() == [0, 1]  # stopped at the first checkpoint
    assert main(["train", "--config", str(tiny_config), "--out", str(out), "--resume"]) == 0
    assert pd.read_csv(out / "log.csv")["step"].tolist() == list(range(7))
    assert (out / "model.safetensors").exists()


def test_the_model_so_far_of_a_run_in_progress_is_exported_and_the_run_resumes(tmp_path, tiny_config):
    out = tmp_path / "run"
    assert main(["train", "--config", str(tiny_config), "--out", str(out), "--export"]) == 2  # no checkpoint yet
    assert main(["train", "--config", str(tiny_config), "--out", str(out), "--minutes", "0.0001"]) == 0
    assert main(["train", "--config", str(tiny_config), "--out", str(out), "--export"]) == 0
    model, card = load_model(out / "model.safetensors")
    assert card["training"]["tokenizer_steps"] == 2 and card["training"]["steps"] == 0  # stopped at step 2
    assert card["training"]["run_steps"] == 4 and {"low_jaccard", "high_jaccard"} <= set(card["heldout"])
    assert main(["train", "--config", str(tiny_config), "--out", str(out), "--resume"]) == 0
    assert pd.read_csv(out / "log.csv")["step"].tolist() == list(range(7))
    assert "run_steps" not in load_model(out / "model.safetensors")[1]["training"]  # the finished run's model


def test_train_from_dataset_folder_and_fine_tune(tmp_path, tiny_config):
    data = tmp_path / "data"
    assert main(["simulate", str(data), "--n-samples", "2", "--n-frames", "4", "--frame-size", "64"]) == 0
    out = tmp_path / "run"
    assert main(["train", "--config", str(tiny_config), "--out", str(out), "--data", str(data)]) == 0
    tuned = tmp_path / "tuned"
    assert main(["train", "--config", str(tiny_config), "--out", str(tuned), "--data", str(data),
                 "--init", str(out / "model.safetensors")]) == 0
    log = pd.read_csv(tuned / "log.csv")
    assert (log["stage"] == "main").all()  # fine-tuning skips the tokenizer stage
    _, card = load_model(tuned / "model.safetensors")
    assert card["init"]["weights"] == "model.safetensors" and card["init"]["training"]["tokenizer_steps"] == 3
    assert card["init"]["train_config"]["model"]["vocab_size"] == 32  # the parent's whole recipe is kept


def test_prefetched_batches_come_from_worker_processes():
    """Worker processes make the batches; a thread of this process receives the next one ahead
    and stops with close()."""
    config = TrainConfig.from_dict(TINY)
    source = PrefetchedSource(SimulatedSource(config.simulation, config.model, 32, seed=0), workers=2)
    try:
        first, second = source.batch(3), source.batch(3)
        assert [t for t in threading.enumerate() if t.name == "receive-batches"]
    finally:
        source.close()
    assert first.photons.shape == (3, 1, 32, 32) and first.token_map.shape[-2:] == (64, 64)
    assert not torch.equal(first.photons, second.photons)
    assert not [t for t in threading.enumerate() if t.name == "receive-batches"]


def test_train_from_labelled_stack_and_csv(tmp_path, tiny_config):
    data = tmp_path / "data"
    main(["simulate", str(data), "--n-samples", "1", "--n-frames", "3", "--frame-size", "64"])
    sample = data / "sample_64_000"
    csv = tmp_path / "labels.csv"
    assert main(["localize", str(sample / "sample_64_000.ome.tiff"), "--out", str(csv)]) == 0
    out = tmp_path / "run"
    assert main(["train", "--config", str(tiny_config), "--out", str(out),
                 "--stack", str(sample / "sample_64_000.ome.tiff"), "--labels", str(csv)]) == 0
    assert (out / "model.safetensors").exists()


def test_bad_training_config(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"model": {"patch_nums": [5, 10]}, "training": {}}))
    with pytest.raises(InputError, match="one weight per"):
        TrainConfig.from_file(path)
    path.write_text("{not json")
    with pytest.raises(InputError, match="cannot read training config"):
        TrainConfig.from_file(path)
    path.write_text(json.dumps({"simulation": {"density_sampling": "sideways"}}))
    with pytest.raises(InputError, match="density_sampling"):
        TrainConfig.from_file(path)
    path.write_text(json.dumps({"training": {"localisation_loss": "nearest"}}))
    with pytest.raises(InputError, match="localisation_loss must be one of cells, mixture"):
        TrainConfig.from_file(path)


def test_log_uniform_density_draws():
    config = TrainConfig.from_dict({"simulation": {"density_sampling": "log-uniform", "density_per_um2": [0.01, 1.0]}})
    source = SimulatedSource(config.simulation, config.model, 64, seed=0)
    draws = np.array([source.simulation_config(1).density_per_um2 for _ in range(2000)])
    assert draws.min() >= 0.01 and draws.max() <= 1.0
    assert abs(np.median(draws) - 0.1) < 0.02  # the geometric middle, not (0.01 + 1) / 2


def test_fine_tune_a_model_with_another_number_of_scales(tmp_path, tiny_config):
    """A config written for four scales fine-tunes a five-scale parent with the parent's weights."""
    five = tmp_path / "five.json"
    five.write_text(json.dumps({"model": {**TINY["model"], "patch_nums": [5, 10, 20, 40, 40]},
                                "training": {**TINY["training"], "tokenizer_steps": 1, "steps": 1,
                                             "scale_weights": [0.5, 0.7, 0.9, 1.0, 0.8]}}))
    parent = tmp_path / "parent"
    assert main(["train", "--config", str(five), "--out", str(parent)]) == 0
    weights = parent / "model.safetensors"
    assert main(["train", "--config", str(tiny_config), "--out", str(tmp_path / "tuned"), "--init", str(weights)]) == 0
    _, card = load_model(tmp_path / "tuned" / "model.safetensors")
    assert card["train_config"]["training"]["scale_weights"] == [0.5, 0.7, 0.9, 1.0, 0.8]
    meta = json.loads(weights.with_suffix(".json").read_text())
    del meta["card"]["train_config"]  # a parent that does not say how it was trained
    weights.with_suffix(".json").write_text(json.dumps(meta))
    config = TrainConfig.from_file(tiny_config)
    with pytest.raises(InputError, match="model has 5 scales"):
        train(config, tmp_path / "again", SimulatedSource(config.simulation, config.model, 64, seed=0),
              init_weights=weights)


def test_redrawn_frames_residual_is_shot_noise_for_the_truth_and_verdicts():
    """The fine-tune comparison's self-consistency check: the true emitters redraw a simulated
    stack down to shot noise (~1); missing them all, or doubling their photons, does not."""
    import pandas as pd

    from napari_var_emitter.io.camera import frames_to_photons
    from napari_var_emitter.plugin.sample_data import SAMPLE
    from napari_var_emitter.simulate.stack import simulate_stack
    from napari_var_emitter.train.compare import RESIDUAL, held_out_start, redraw_residual, verdict

    frames, truth = simulate_stack(SAMPLE, np.random.default_rng(77))
    photons = frames_to_photons(frames[:6], truth.camera)
    emitters = truth.emitters[truth.emitters["frame"] < 6]
    exact = redraw_residual(photons, emitters, 100.0, SAMPLE.psf.sigma_nm)
    assert 0.9 < exact < 1.3
    assert redraw_residual(photons, emitters.iloc[:0], 100.0, SAMPLE.psf.sigma_nm) > 10 * exact
    assert redraw_residual(photons, emitters.assign(photons=2 * emitters["photons"]), 100.0,
                           SAMPLE.psf.sigma_nm) > 3 * exact
    assert (held_out_start(1), held_out_start(20), held_out_start(1000)) == (0, 16, 980)
    table = pd.DataFrame({"before": [2.0], "after": [1.2]}, index=[RESIDUAL])
    assert verdict(table).startswith("Better") and verdict(table[["after", "before"]].set_axis(
        ["before", "after"], axis=1)).startswith("Worse")


GENERALIST = json.loads((Path(__file__).resolve().parents[1] / "configs" / "gpu_v2.json").read_text())["simulation"]


def test_generalist_envelope_draws_every_range_and_background_map():
    """The v2 envelope: each range drawn inside its bounds, log-uniform ones around their geometric
    middle, both camera types, structured backgrounds, and the background target is the map."""
    config = TrainConfig.from_dict({"simulation": GENERALIST})
    source = SimulatedSource(config.simulation, config.model, 64, seed=3)
    sims = [source.simulation_config(1) for _ in range(600)]
    px = np.array([s.camera.pixel_size_nm for s in sims])
    sigma_px = np.array([s.psf.sigma_nm for s in sims]) / px
    photons = np.array([s.photons_mean for s in sims])
    background = np.array([s.background_photons for s in sims])
    assert 60 <= px.min() and px.max() <= 200 and abs(np.median(px) - np.sqrt(60 * 200)) < 12
    assert 0.7 <= sigma_px.min() and sigma_px.max() <= 2.5
    assert 100 <= photons.min() and photons.max() <= 20000 and np.median(photons) < 3000
    assert background.min() < 1 and background.max() <= 1000  # 0 reachable: log(1 + b) uniform
    gains = [s.camera.em_gain for s in sims if s.camera.type == "EMCCD"]
    assert 0.35 < len(gains) / len(sims) < 0.65 and 10 <= min(gains) and max(gains) <= 300
    assert {s.structure.kind for s in sims} == {"uniform", "filaments", "clusters"}
    contrast = np.array([s.background_contrast for s in sims])
    assert 0.35 < np.mean(contrast > 1) < 0.65 and contrast.max() <= 10
    envelope = Envelope.from_card({"train_config": config.to_dict()})
    assert envelope.psf_sigma_px == (0.7, 2.5) and envelope.pixel_size_nm == (60.0, 200.0)
    batch = source.batch(16)
    assert batch.background.shape == (16, 64, 64) and torch.isfinite(batch.background).all()
    bad = {**GENERALIST, "log_uniform": ["pixel_size_nm", "sideways"]}
    with pytest.raises(InputError, match="sideways"):
        TrainConfig.from_dict({"simulation": bad})
    with pytest.raises(InputError, match="structures"):
        TrainConfig.from_dict({"simulation": {**GENERALIST, "structures": ["stars"]}})


@pytest.mark.parametrize("loss", ["cells", "mixture"])
def test_no_var_baseline_trains_and_predicts_without_tokens(tmp_path, loss):
    """var_prior false: no tokenizer stage, no transformer, the same encoder and head; predicts
    a table and no per-scale maps; with either localisation loss (its parts in the log)."""
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps({**TINY, "model": {**TINY["model"], "var_prior": False},
                                "training": {**TINY["training"], "localisation_loss": loss}}))
    out = tmp_path / "run"
    assert main(["train", "--config", str(path), "--out", str(out), "--device", "cpu"]) == 0
    logged = pd.read_csv(out / "log.csv")
    assert np.isfinite(logged["loc_count" if loss == "mixture" else "loc_detect"]).all()
    model, card = load_model(out / "model.safetensors")
    assert not hasattr(model, "tokenizer") and not hasattr(model, "blocks")
    assert card["training"]["tokenizer_steps"] == 0
    frames = np.random.default_rng(0).poisson(30, (2, 64, 64)).astype(np.uint16) + 100
    prediction = predict_frames(model, frames, Camera())
    assert prediction.scale_maps == [] and list(prediction.table.columns)[:3] == ["frame", "x_nm", "y_nm"]


def test_3d_model_trains_for_a_calibration_and_predicts_z(tmp_path, tiny_config, capsys):
    """train --psf: astigmatic simulations with z targets and a z output; predict --psf with that
    model writes z and its uncertainty; another calibration is warned about; a 2-D model given a
    calibration, or a 3-D model given none, are refused in plain words (tiny model: plumbing only)."""
    psf = PSF(astigmatism=True, curve_x=DefocusCurve(135.0, -220.0, 300.0), curve_y=DefocusCurve(130.0, 220.0, 300.0),
              z_range_nm=(-400.0, 400.0))
    psf_path = tmp_path / "psf.json"
    write_psf_file(psf_path, psf, 100.0, {})
    out = tmp_path / "run"
    assert main(["train", "--config", str(tiny_config), "--psf", str(psf_path), "--out", str(out),
                 "--device", "cpu"]) == 0
    weights = out / "model.safetensors"
    model, card = load_model(weights)
    assert model.config.with_z and TrainConfig.from_dict(card["train_config"]).simulation.psf_calibration == psf
    assert {"low_rmse_z_nm", "high_rmse_z_nm"} <= set(card["heldout"])  # held-out axial RMSE logged
    batch = SimulatedSource(TrainConfig.from_dict(card["train_config"]).simulation, model.config, 64, 0).batch(8)
    z_um = batch.dense_map[:, 4][batch.dense_map[:, 0] > 0]
    assert len(z_um) > 10 and z_um.min() >= -0.4 and z_um.max() <= 0.4 and z_um.std() > 0.1  # z in µm, spread out
    camera = Camera(baseline_adu=100.0, e_per_adu=0.5, read_noise_e=1.5)
    frames, _ = simulate_stack(SimulationConfig(frame_size=64, n_frames=2, density_per_um2=0.5, psf=psf,
                                                camera=camera), np.random.default_rng(3))
    table = predict_frames(model, frames, camera, PredictOptions(threshold=0.01)).table
    assert len(table) and np.isfinite(table["z_nm"]).all() and (table["uncertainty_z_nm"] > 0).all()
    write_ome_tiff(tmp_path / "movie.ome.tiff", frames, camera)
    csv = tmp_path / "z.csv"
    assert main(["predict", str(tmp_path / "movie.ome.tiff"), "--model", str(weights), "--psf", str(psf_path),
                 "--threshold", "0.01", "--device", "cpu", "--out", str(csv)]) == 0
    header = csv.read_text().splitlines()[0]
    assert '"z [nm]"' in header and '"uncertainty_z [nm]"' in header
    envelope = Envelope.from_card(card)
    assert envelope.psf_warnings(psf) == []
    other = dataclasses.replace(psf, curve_x=DefocusCurve(135.0, -150.0, 300.0))
    assert "another PSF calibration" in envelope.psf_warnings(other)[0]
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "movie.ome.tiff"), "--psf", str(psf_path), "--model", str(BUNDLED),
                 "--out", str(tmp_path / "again.csv")]) == 2
    assert "var_emitter.safetensors is a 2-D model" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "movie.ome.tiff"), "--model", str(weights), "--out",
                 str(tmp_path / "again.csv")]) == 2
    assert "is a 3-D model: give the PSF calibration" in capsys.readouterr().err
    with pytest.raises(InputError, match="a 3-D model"):
        TrainConfig.from_dict({**TINY, "model": {**TINY["model"], "with_z": True}})


def test_calibration_conditioned_3d_model_trains_on_a_family_and_takes_the_calibration(tmp_path):
    """simulation.psf_family + model.psf_condition: every group draws its own calibration, the
    batch carries each tile's calibration vector, and the model's output depends on the
    calibration it is given; predict refuses to run it without one and warns outside the family."""
    family = {"sigma0_nm": [120.0, 150.0], "focus_distance_nm": [180.0, 300.0], "depth_nm": [260.0, 400.0],
              "cubic": [-0.03, 0.03], "quartic": [0.0, 0.03], "z_half_range_nm": 500.0}
    path = tmp_path / "conditioned.json"
    path.write_text(json.dumps({**TINY, "model": {**TINY["model"], "with_z": True, "psf_condition": True},
                                "simulation": {"psf_family": family}}))
    config = TrainConfig.from_file(path)
    batch = SimulatedSource(config.simulation, config.model, 64, 0).batch(16)  # two groups of 8
    assert batch.calibration.shape == (16, 10) and not torch.equal(batch.calibration[0], batch.calibration[8])
    out = tmp_path / "run"
    assert main(["train", "--config", str(path), "--out", str(out), "--device", "cpu"]) == 0
    model, card = load_model(out / "model.safetensors")
    assert model.config.psf_condition and {"low_rmse_z_nm"} <= set(card["heldout"])
    psf = config.simulation.psf_family.middle()
    camera = Camera(baseline_adu=100.0, e_per_adu=0.5, read_noise_e=1.5)
    frames, _ = simulate_stack(SimulationConfig(frame_size=64, n_frames=1, density_per_um2=0.5, psf=psf,
                                                camera=camera), np.random.default_rng(4))
    with pytest.raises(InputError, match="PSF calibration as an input"):
        predict_frames(model, frames, camera)
    photons = torch.from_numpy(camera.adu_to_photons(frames).astype(np.float32))[:, None]
    heads = [model.generate(photons, calibration_BP=torch.from_numpy(calibration_vector(p))[None])[1]
             for p in (psf, config.simulation.psf_family.draw(np.random.default_rng(1)))]
    assert not torch.allclose(heads[0], heads[1])  # the calibration reaches the output
    table = predict_frames(model, frames, camera, PredictOptions(threshold=0.01, psf=psf)).table
    assert "z_nm" in table and "uncertainty_z_nm" in table
    envelope = Envelope.from_card(card)
    assert envelope.psf_warnings(psf) == []
    wide = dataclasses.replace(psf, curve_x=DefocusCurve(200.0, -250.0, 330.0))
    assert "x sigma0 200" in envelope.psf_warnings(wide)[0]
    with pytest.raises(InputError, match="psf_condition"):
        TrainConfig.from_dict({**TINY, "model": {**TINY["model"], "with_z": True},
                               "simulation": {"psf_family": family}})


def test_conditioned_3d_model_fine_tunes_to_one_calibration(tmp_path, capsys):
    """train --init (the bundled 3-D model) --psf: the parent's architecture, so batches still carry
    the calibration; emitters at z within simulation.z_range_nm; the card then holds that one
    calibration and predict warns about another. A 3-D parent without --psf, a 2-D parent with one
    and a z range outside the calibration's are refused in plain words (4 steps: plumbing only)."""
    psf = PSF(astigmatism=True, curve_x=DefocusCurve(140.0, -230.0, 320.0), curve_y=DefocusCurve(135.0, 230.0, 320.0),
              z_range_nm=(-800.0, 800.0))
    psf_path, config_path = tmp_path / "psf.json", tmp_path / "finetune.json"
    write_psf_file(psf_path, psf, 100.0, {})
    config_path.write_text(json.dumps({"training": TINY["training"], "simulation": {"z_range_nm": [-300, 300]}}))
    out = tmp_path / "tuned"
    assert main(["train", "--config", str(config_path), "--init", "bundled-3d", "--psf", str(psf_path),
                 "--out", str(out), "--device", "cpu"]) == 0
    model, card = load_model(out / "model.safetensors")
    simulation = TrainConfig.from_dict(card["train_config"]).simulation
    assert model.config == load_model(BUNDLED_3D)[0].config and model.config.psf_condition
    assert simulation.psf_calibration == dataclasses.replace(psf, z_range_nm=(-300.0, 300.0))
    batch = SimulatedSource(simulation, model.config, 64, 0).batch(8)
    z_um = batch.dense_map[:, 4][batch.dense_map[:, 0] > 0]
    assert batch.calibration.shape == (8, 10) and len(z_um) > 5 and np.abs(z_um).max() <= 0.3
    envelope = Envelope.from_card(card)
    assert envelope.psf_warnings(psf) == []
    other = dataclasses.replace(psf, curve_y=DefocusCurve(135.0, 150.0, 320.0))
    assert "another PSF calibration" in envelope.psf_warnings(other)[0]
    capsys.readouterr()
    assert main(["train", "--config", str(config_path), "--init", str(BUNDLED_3D), "--out", str(tmp_path / "a")]) == 2
    assert "the model to fine-tune is a 3-D model: give its PSF calibration" in capsys.readouterr().err
    assert main(["train", "--config", str(config_path), "--init", "bundled", "--psf", str(psf_path),
                 "--out", str(tmp_path / "b")]) == 2
    assert "the model to fine-tune is a 2-D model" in capsys.readouterr().err
    with pytest.raises(InputError, match="outside the calibration's valid range"):
        TrainConfig.from_dict({"model": {"with_z": True}, "simulation": {
            "psf_calibration": dataclasses.asdict(psf), "z_range_nm": [900, 1000]}})


@pytest.mark.parametrize("path", sorted(p for p in (Path(__file__).parents[1] / "configs").glob("*.json")
                                        if "simulate" not in p.name), ids=lambda p: p.name)
def test_every_training_config_in_the_repository_is_valid(path):
    """The GPU configs are checked here too, where no GPU runs them: reading one raises InputError
    for any unknown key, bad range or inconsistent combination (e.g. with_z without a calibration)."""
    TrainConfig.from_file(path)


def test_labelled_tiles_are_binned_as_predict_bins_them():
    """bin_px 2: a tile of 32 network pixels covers 64 camera pixels, each network pixel the sum of
    2 x 2 camera pixels' photons; the labelled emitters land in the network's pixels (200 nm)."""
    config = TrainConfig.from_dict(TINY)
    camera = Camera(pixel_size_nm=100.0, baseline_adu=100.0, e_per_adu=1.0)
    frames = np.stack([np.full((64, 64), 200.0 + 10 * t) for t in range(5)])  # frame t: 100 + 10 t photons/px
    labels = pd.DataFrame({"frame": np.arange(5), "x_nm": 150.0 + 400 * np.arange(5), "y_nm": 1650.0,
                           "photons": 1000.0})
    batch = LabelledSource([(frames, labels, camera)], config.model, 32, seed=0, bin_px=2).batch(10)
    assert batch.photons.shape == (10, 1, 32, 32)
    t = ((batch.photons[:, 0, 0, 0] / 4 - 100) / 10).round().long()
    assert torch.equal(batch.photons[:, 0], (4 * (100 + 10 * t).float())[:, None, None].expand(-1, 32, 32))
    occupied = batch.dense_map[:, 0].flatten(1).argmax(1)  # the output grid is 2x the network's (100 nm cells)
    assert torch.equal(occupied % 64, 1 + 4 * t) and (occupied // 64 == 16).all()
    with pytest.raises(InputError, match="at least 64 px"):
        LabelledSource([(frames[:, :48], labels, camera)], config.model, 32, seed=0, bin_px=2)


def test_a_model_with_context_frames_learns_each_frame_beside_its_neighbours(tmp_path):
    """context_frames 1: every training tile comes with the frames before and after it (channels 1
    and 2, the nearest frame standing in beyond the stack's ends) and the emitters of its own frame
    (channel 0), from labelled stacks and from simulations of consecutive frames; it trains and
    predicts."""
    config = TrainConfig.from_dict({**TINY, "model": {**TINY["model"], "context_frames": 1, "var_prior": False}})
    camera = Camera(baseline_adu=100.0, e_per_adu=1.0)
    frames = np.stack([np.full((32, 32), 200.0 + 10 * t) for t in range(5)])  # frame t: 100 + 10 t photons
    labels = pd.DataFrame({"frame": np.arange(5), "x_nm": 150.0 + 400 * np.arange(5), "y_nm": 1650.0,
                           "photons": 1000.0})  # frame t's emitter in pixel (16, 1 + 4 t)
    source = LabelledSource([(frames, labels, camera)], config.model, 32, seed=0)
    batch = source.batch(12)
    assert batch.photons.shape == (12, 3, 32, 32)
    t = ((batch.photons[:, 0, 0, 0] - 100) / 10).round().long()
    assert sorted(set(t.tolist())) == [0, 1, 2, 3, 4]
    assert torch.equal(batch.photons[:, 1, 0, 0], 100 + 10 * (t - 1).clamp(min=0).float())
    assert torch.equal(batch.photons[:, 2, 0, 0], 100 + 10 * (t + 1).clamp(max=4).float())
    occupied = batch.dense_map[:, 0].flatten(1).argmax(1)  # the output grid is 2x the camera grid
    assert torch.equal(occupied % 64 // 2, 1 + 4 * t) and (occupied // 64 // 2 == 16).all()

    simulated = SimulatedSource(config.simulation, config.model, 32, seed=1).batch(8)
    assert simulated.photons.shape == (8, 3, 32, 32)  # one condition: consecutive frames of one stack
    assert torch.equal(simulated.photons[1:, 1], simulated.photons[:-1, 0])
    assert torch.equal(simulated.photons[:-1, 2], simulated.photons[1:, 0])

    # independent_frames_fraction 1: every frame simulated on its own, its neighbours' molecules not in it
    def shared_with_previous(fraction):
        simulation = {"density_per_um2": [2.0, 2.0], "photons_mean": [3000.0, 3000.0],
                      "independent_frames_fraction": fraction}
        ranges = TrainConfig.from_dict({**TINY, "simulation": simulation}).simulation
        batch = SimulatedSource(ranges, config.model, 32, seed=2).batch(8)
        assert torch.equal(batch.photons[1:, 1], batch.photons[:-1, 0])  # still the frames beside
        on = batch.dense_map[:, 0] > 0.5
        return float((on[1:] & on[:-1]).sum() / on[1:].sum())
    assert shared_with_previous(0.0) > 0.3 and shared_with_previous(1.0) < 0.05
    # single_frame_fraction 1: single images, each frame its own neighbours, as predict sees one
    simulation = {"density_per_um2": [2.0, 2.0], "single_frame_fraction": 1.0}
    batch = SimulatedSource(TrainConfig.from_dict({**TINY, "simulation": simulation}).simulation, config.model, 32,
                            seed=2).batch(8)
    assert torch.equal(batch.photons[:, 1], batch.photons[:, 0]) and torch.equal(batch.photons[:, 2],
                                                                                  batch.photons[:, 0])
    assert not torch.equal(batch.photons[1:, 0], batch.photons[:-1, 0]) and batch.dense_map.sum() > 0
    with pytest.raises(InputError, match="single_frame_fraction"):
        TrainConfig.from_dict({**TINY, "simulation": {"single_frame_fraction": 1.5}})

    path = tmp_path / "context.json"
    path.write_text(json.dumps(config.to_dict()))
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run"), "--device", "cpu"]) == 0
    model, _ = load_model(tmp_path / "run" / "model.safetensors")
    assert model.config.context_frames == 1
    stack = np.random.default_rng(0).poisson(30, (3, 64, 64)).astype(np.uint16) + 100
    assert list(predict_frames(model, stack, Camera()).table.columns)[:3] == ["frame", "x_nm", "y_nm"]


def test_self_calibrated_ranges_reach_the_stacks_bright_spots():
    """A stack whose brightest spots lie far above its median: the fine-tune's photons reach them
    (a model misses spots brighter than any it saw, and Predict would warn of them after it)."""
    from napari_var_emitter.io.camera import Camera
    from napari_var_emitter.train.calibrate import ranges_for

    conditions = {"psf_sigma_nm": 150.0, "photons": 112.0, "background_photons": 20.0, "density_per_um2": 0.5}
    assert ranges_for(conditions, Camera()).photons_mean == pytest.approx((0.6 * 112, 1.8 * 112))
    bright = ranges_for({**conditions, "photons_bright": 480.0}, Camera())
    assert bright.photons_mean == pytest.approx((0.6 * 112, 480.0))
    assert ranges_for({**conditions, "photons_bright": 150.0}, Camera()).photons_mean[1] == pytest.approx(1.8 * 112)


def test_self_calibrated_ranges_are_in_the_pixels_the_network_sees():
    """Spots the model sees binned 2 x 2: the fine-tune simulates that camera (pixels twice as large,
    four times the background and twice the read noise per pixel); the PSF, photons and density stay."""
    from napari_var_emitter.io.camera import Camera
    from napari_var_emitter.train.calibrate import ranges_for

    camera = Camera(pixel_size_nm=65.0, e_per_adu=0.5, read_noise_e=1.6)
    conditions = {"psf_sigma_nm": 150.0, "photons": 3000.0, "background_photons": 30.0, "density_per_um2": 1.0}
    plain, binned = ranges_for(conditions, camera), ranges_for({**conditions, "bin_px": 2}, camera)
    assert plain.pixel_size_nm == (65.0, 65.0) and binned.pixel_size_nm == (130.0, 130.0)
    assert plain.background_photons == pytest.approx((21.0, 39.0))
    assert binned.background_photons == pytest.approx((84.0, 156.0))
    assert plain.scmos_read_noise_e == pytest.approx((1.6, 1.6))
    assert binned.scmos_read_noise_e == pytest.approx((3.2, 3.2))
    for field in ("psf_sigma_nm", "photons_mean", "density_per_um2"):
        assert getattr(binned, field) == getattr(plain, field)
