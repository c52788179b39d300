"""Long stacks: chunked prediction streamed to CSV, resume after an interruption, Dask."""

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from napari_var_emitter.cli import main
from napari_var_emitter.errors import InputError
from napari_var_emitter.io.camera import Camera
from napari_var_emitter.io.localizations_csv import read_localizations_csv
from napari_var_emitter.io.tiff import write_ome_tiff
from napari_var_emitter.io.localizations_h5 import read_localizations_h5
from napari_var_emitter.model.checkpoint import load_model, save_model
from napari_var_emitter.model.config import ModelConfig
from napari_var_emitter.model.predictor import VAREmitterPredictor
from napari_var_emitter.predict import PredictOptions, predict_frames
from napari_var_emitter.predict.long_stack import chunk_ranges, predict_stack_to_file, run_chunk
from napari_var_emitter.simulate.config import SimulationConfig
from napari_var_emitter.simulate.stack import simulate_stack

CAMERA = Camera(e_per_adu=0.5, read_noise_e=1.5)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    config = SimulationConfig(frame_size=(64, 64), n_frames=20, density_per_um2=0.8, camera=CAMERA)
    frames, _ = simulate_stack(config, np.random.default_rng(31))
    path = tmp_path_factory.mktemp("stack") / "s.ome.tiff"
    write_ome_tiff(path, frames, CAMERA)
    return path, frames


OPTIONS = PredictOptions(threshold=0.3, psf_sigma_nm=130.0)  # one PSF sigma for the refinement of the whole and the chunks


def test_chunk_ranges():
    assert chunk_ranges(10, 4) == [(0, 4), (4, 8), (8, 10)]
    with pytest.raises(InputError):
        chunk_ranges(10, 0)


def test_chunks_equal_the_whole_stack_and_resume_after_interruption(stack, tmp_path):
    path, frames = stack
    whole = predict_frames(load_model()[0], frames, CAMERA, OPTIONS).table
    out = tmp_path / "locs.csv"

    def interrupt(done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        predict_stack_to_file(path, CAMERA, OPTIONS, out, 8, progress=interrupt)
    parts = tmp_path / "locs.csv.parts"
    assert not out.exists() and len(list(parts.glob("chunk_*.npz"))) == 2
    with pytest.raises(InputError, match="other settings"):
        predict_stack_to_file(path, CAMERA, dataclasses.replace(OPTIONS, threshold=0.5), out, 8)
    seen = []
    rows = predict_stack_to_file(path, CAMERA, OPTIONS, out, 8, progress=lambda done, total: seen.append(done))
    assert seen == [3] and not parts.exists()  # only the missing chunk ran
    table = read_localizations_csv(out)
    assert rows == len(table) == len(whole)
    pd.testing.assert_frame_equal(table[whole.columns], whole[whole.columns], check_dtype=False, rtol=1e-6)
    assert table["id"].tolist() == list(range(1, len(table) + 1))
    assert predict_stack_to_file(path, CAMERA, OPTIONS, tmp_path / "locs.h5", 8) == rows  # the same, as HDF5
    pd.testing.assert_frame_equal(read_localizations_h5(tmp_path / "locs.h5")[table.columns], table,
                                  check_dtype=False, rtol=1e-6)
    # chunks of 6 frames, not a whole number of batches of 4: rounded up to 8, the same table (the refinement
    # judges per batch, and chunks of 250 in batches of 4 stated other uncertainties in every second chunk)
    assert predict_stack_to_file(path, CAMERA, OPTIONS, tmp_path / "six.csv", 6) == rows
    pd.testing.assert_frame_equal(read_localizations_csv(tmp_path / "six.csv"), table, check_dtype=False, rtol=1e-6)


def test_dask_local_cluster_matches_single_process(stack, tmp_path):
    path, _ = stack
    single, spread = tmp_path / "single.csv", tmp_path / "dask.csv"
    flags = ["--device", "cpu", "--chunk-frames", "6"]
    assert main(["predict", str(path), "--out", str(single), *flags]) == 0
    assert main(["predict", str(path), "--out", str(spread), *flags, "--dask", "local:2"]) == 0
    a, b = read_localizations_csv(single), read_localizations_csv(spread)
    assert len(a) > 20 and a["frame"].is_monotonic_increasing
    # the same localisations in the same order; values to float32 rounding (Dask workers run torch
    # single-threaded, and the thread count changes the order of float sums)
    assert a["frame"].tolist() == b["frame"].tolist() and a["id"].tolist() == b["id"].tolist()
    pd.testing.assert_frame_equal(a, b, rtol=1e-5)


def test_dask_errors(stack, tmp_path, capsys):
    path, _ = stack
    assert main(["predict", str(path), "--out", str(tmp_path / "x.csv"), "--dask", "local:two"]) == 2
    assert "needs a number of workers" in capsys.readouterr().err
    # a re-trial: local:0 waited forever for a worker; an address without a port was an internal error
    assert main(["predict", str(path), "--out", str(tmp_path / "x.csv"), "--dask", "local:0"]) == 2
    assert "needs 1 or more workers" in capsys.readouterr().err
    assert main(["predict", str(path), "--out", str(tmp_path / "x.csv"), "--dask", "bogus"]) == 2
    assert "give local:N (N worker processes here) or a scheduler's address" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
    assert main(["predict", str(path), "--out", str(tmp_path / "x.csv"), "--maps", str(tmp_path / "m.h5"),
                 "--dask", "local:2"]) == 2


def test_a_model_with_context_frames_sees_across_chunk_boundaries(stack, tmp_path):
    """A model that sees each frame's neighbours (context_frames 1) gives in chunks, in a Dask
    worker's chunk and one frame at a time what it gives over the whole stack: each chunk reads the
    frames beside it as context."""
    path, frames = stack
    torch.manual_seed(0)
    model = VAREmitterPredictor(ModelConfig(var_prior=False, context_frames=1, image_channels=8, head_width=8,
                                            tokenizer_channels=8)).eval()
    with torch.no_grad():  # non-trivial weights: every output depends on every input frame
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.2)
    weights = tmp_path / "context.safetensors"
    save_model(weights, model, {})
    options = dataclasses.replace(OPTIONS, model=str(weights), threshold=0.2)
    whole = predict_frames(model, frames, CAMERA, options)
    assert whole.table["frame"].nunique() == len(frames)  # detections in every frame
    out = tmp_path / "locs.csv"
    predict_stack_to_file(path, CAMERA, options, out, 6)
    chunked = read_localizations_csv(out)
    pd.testing.assert_frame_equal(chunked[whole.table.columns], whole.table, check_dtype=False, rtol=1e-5)
    in_worker = run_chunk(str(path), CAMERA.to_dict(), options.to_dict(), 6, 12)
    pd.testing.assert_frame_equal(in_worker, whole.table[whole.table["frame"].between(6, 11)].reset_index(drop=True),
                                  check_dtype=False, rtol=1e-5)
    one = predict_frames(model, frames, CAMERA, dataclasses.replace(options, output_map=True), span=(6, 7))
    assert one.table["frame"].eq(6).all()
    np.testing.assert_allclose(one.output_map[0], predict_frames(
        model, frames, CAMERA, dataclasses.replace(options, output_map=True)).output_map[6], rtol=1e-5, atol=1e-6)
    with pytest.warns(UserWarning, match="frames before and after"):  # one frame alone: no context to see
        predict_frames(model, frames[6:7], CAMERA, options)
    model.card = {"train_config": {"simulation": {  # ... unless it was trained on frames alone too
        "pixel_size_nm": 100.0, "psf_sigma_px": [0.9, 1.5], "photons_mean": [100.0, 20000.0],
        "background_photons": [0.0, 1000.0], "single_frame_fraction": 0.5}}}
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        predict_frames(model, frames[6:7], CAMERA, options)
    assert not [w for w in said if "frames before and after" in str(w.message)]
    model.card = {}
    changed = frames.copy()
    changed[7] = changed[7][::-1]  # frame 8 (1-based) changes: frame 7's maps change, frame 5's do not
    again = predict_frames(model, changed, CAMERA, dataclasses.replace(options, output_map=True), span=(4, 7))
    before = predict_frames(model, frames, CAMERA, dataclasses.replace(options, output_map=True), span=(4, 7))
    assert np.array_equal(again.output_map[0], before.output_map[0])
    assert not np.allclose(again.output_map[2], before.output_map[2], atol=1e-3)


def test_a_chunk_that_is_no_table_is_not_saved_and_photons_stay_finite(stack, tmp_path):
    """A gain typed 1,000 times too large: the network's photons overflowed to inf (then NaN), and
    chunks of NaN were saved, resumed and refused at the end, run after run. Photons are read as at
    most MAX_MAP_PHOTONS, and a chunk that is no table is refused before it is saved."""
    from napari_var_emitter.model.targets import MAX_MAP_PHOTONS, map_to_photons
    from napari_var_emitter.predict.long_stack import StackJob

    assert np.allclose(map_to_photons(np.array([-1.0, 0.0, 1e3])), [0.0, 0.0, MAX_MAP_PHOTONS])
    path, _ = stack
    out = tmp_path / "locs.csv"
    job = StackJob.start(path, CAMERA, OPTIONS, out, chunk_frames=8)
    try:
        table = pd.DataFrame({"frame": [0, 1], "x_nm": [1.0, 2.0], "y_nm": [3.0, 4.0], "photons": [np.nan, 5.0]})
        with pytest.raises(InputError, match="frames 1–8: column 'photons' has 1 missing/NaN"):
            job.save(job.ranges[0], table)
        assert job.todo() == job.ranges  # nothing saved
    finally:
        job.close()
