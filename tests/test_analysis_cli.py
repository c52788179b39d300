"""The analysis commands end to end: files in, files out, clear errors that write nothing."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_var_emitter.cli import main
from napari_var_emitter.io.localizations import read_localizations, write_localizations
from napari_var_emitter.simulate.config import SimulationConfig, StructureConfig
from napari_var_emitter.simulate.localizations import drift_trajectory, simulate_localizations

COMMANDS = ["drift", "merge", "resolution", "render", "stats"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert f"var-emitter {command}" in capsys.readouterr().out


@pytest.fixture(scope="module")
def drifted_csv(tmp_path_factory) -> Path:
    config = SimulationConfig(frame_size=(64, 64), n_frames=3000, density_per_um2=0.5,
                              structure=StructureConfig(kind="filaments"))
    rng = np.random.default_rng(120)
    locs, _ = simulate_localizations(config, rng, drift_trajectory(config.n_frames, rng, total_nm=200.0))
    path = tmp_path_factory.mktemp("tables") / "locs.csv"
    write_localizations(path, locs)
    return path


def test_drift_writes_the_corrected_table_trajectory_and_plot(drifted_csv, tmp_path, capsys):
    out = tmp_path / "locs_dc.csv"
    assert main(["drift", str(drifted_csv), "--out", str(out), "--plot", str(tmp_path / "drift.png")]) == 0
    trajectory = pd.read_csv(tmp_path / "locs_dc.drift.csv")
    assert list(trajectory.columns) == ["frame", "dx [nm]", "dy [nm]"]
    assert trajectory["frame"].tolist() == list(range(1, 3001))
    assert np.hypot(trajectory["dx [nm]"], trajectory["dy [nm]"]).max() > 50
    original, corrected = read_localizations(drifted_csv), read_localizations(out)
    assert list(corrected.columns) == list(original.columns) and len(corrected) == len(original)
    shift = corrected[["x_nm", "y_nm"]].to_numpy() - original[["x_nm", "y_nm"]].to_numpy()
    np.testing.assert_allclose(-shift, trajectory[["dx [nm]", "dy [nm]"]].to_numpy()[original["frame"]], atol=1e-2)
    assert (tmp_path / "drift.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert re.search(r"\(RCC: \d+ segments of \d+ frames, agreeing to ±[\d.]+ nm\)\ncorrected: .*\ntrajectory: ",
                     printed), printed


def test_merge_round_trips_first_and_last_frames(drifted_csv, tmp_path):
    out = tmp_path / "merged.csv"
    assert main(["merge", str(drifted_csv), "--out", str(out), "--max-gap", "1"]) == 0
    header = out.read_text().splitlines()[0]
    assert '"last frame"' in header and '"detections"' in header
    merged, original = read_localizations(out), read_localizations(drifted_csv)
    assert merged["n_merged"].sum() == len(original) and (merged["last_frame"] >= merged["frame"]).all()
    assert merged["frame"].min() == 0  # 1-based in the file, 0-based inside
    assert main(["merge", str(drifted_csv), "--out", str(tmp_path / "merged.h5"), "--radius-nm", "30"]) == 0
    assert read_localizations(tmp_path / "merged.h5")["n_merged"].sum() == len(original)


def test_resolution_json(drifted_csv, tmp_path, capsys):
    capsys.readouterr()
    assert main(["resolution", str(drifted_csv), "--json", "--plot", str(tmp_path / "res.png")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert 2 < report["nena_nm"] < 30 and 10 < report["frc_resolution_nm"] < 500 and report["frc_settled"] is True
    assert (tmp_path / "res.png").is_file()


def test_render_and_stats(drifted_csv, tmp_path, capsys):
    out = tmp_path / "render.tif"
    assert main(["render", str(drifted_csv), "--out", str(out), "--pixel-nm", "20", "--colour-by", "frame",
                 "--first-frame", "1", "--last-frame", "1000", "--scale-bar-nm", "1000"]) == 0
    with tifffile.TiffFile(out) as tif:
        assert tif.pages[0].shape[-1] == 3
        numerator, denominator = tif.pages[0].tags["XResolution"].value
        assert tif.imagej_metadata["unit"] == "um" and denominator / numerator * 1000 == pytest.approx(20.0)
    # which colour is which frame (the TIFF holds no legend)
    assert re.search(r"coloured by frame from blue \(frame 1\) to red \(frame [\d,]+\)", capsys.readouterr().out)
    assert main(["stats", str(drifted_csv), "--json", "--plot", str(tmp_path / "stats.png")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == 3000 and summary["localizations"] == len(read_localizations(drifted_csv))
    assert (tmp_path / "stats.png").is_file()


def test_render_refuses_what_it_cannot_write_before_any_work(drifted_csv, tmp_path, capsys):
    """A new user's 0.01 nm pixels ended in "internal error (MemoryError … 2.98 TiB)"; a .png name got a TIFF; frame 0
    was taken: each is one clear line now, and nothing is written."""
    for argv, says in ((["--out", str(tmp_path / "big.tif"), "--pixel-nm", "0.01"],
                       "is too large (at most 400 million px): choose a render pixel of "),
                       (["--out", str(tmp_path / "r.png")], "render writes a TIFF; name it r.tif"),
                       (["--out", str(tmp_path / "r.tif"), "--first-frame", "0"],
                       "--first-frame 0: frames are counted from 1"),
                       (["--out", str(tmp_path / "r.tif"), "--sigma-nm", "0"], "the render blur must be > 0 nm"),
                       (["--out", str(tmp_path / "r.tif"), "--first-frame", "200", "--last-frame", "100"],
                        "first frame 200 is after last frame 100"),
                       (["--out", str(tmp_path / "r.tif"), "--first-frame", "60000"],
                        "no localisations in frames 60,000–: the table's are frames 1–")):
        assert main(["render", str(drifted_csv), *argv]) == 2
        assert says in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def _bad_tables(folder: Path) -> dict[str, Path]:
    header = '"id","frame","x [nm]","y [nm]","uncertainty [nm]"\n'
    tables = {
        "empty": header,
        "one frame": header + "".join(f"{i + 1},1,{100 * i},{50 * i},5\n" for i in range(30)),
        "missing columns": '"id","frame","x [nm]"\n1,1,10\n2,2,20\n',
        "NaN": header + "1,1,10,10,5\n2,2,,20,5\n3,3,30,30,5\n",
    }
    paths = {}
    for name, text in tables.items():
        paths[name] = folder / f"{name.replace(' ', '_')}.csv"
        paths[name].write_text(text)
    return paths


@pytest.mark.parametrize("command", COMMANDS)
def test_bad_input_is_a_clear_error_and_writes_nothing(command, tmp_path, capsys):
    for name, path in _bad_tables(tmp_path).items():
        out = tmp_path / "out" / f"{command}.{'tif' if command == 'render' else 'csv'}"
        argv = [command, str(path)] + (["--out", str(out)] if command in ("drift", "merge", "render") else [])
        if command == "stats" and name == "one frame":
            assert main(argv) == 0  # statistics of one frame are fine
            continue
        if command == "render" and name == "one frame":
            assert main(argv) == 0 and out.is_file()
            assert f"made the folder {out.parent}" in capsys.readouterr().err
            out.unlink()
            continue
        assert main(argv) == 2, (command, name)
        message = capsys.readouterr().err
        assert message.startswith("error: ") and len(message.strip().splitlines()) == 1, message
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_out_may_not_be_the_input(drifted_csv, capsys):
    assert main(["drift", str(drifted_csv), "--out", str(drifted_csv)]) == 2
    assert "nothing was written" in capsys.readouterr().err


SCMOS_REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "external" / "storm-analysis-scmos-real"


@pytest.mark.skipif(not SCMOS_REAL.is_dir(), reason="../shared/data/external is not here")
def test_every_command_on_the_real_scmos_sample(tmp_path, capsys):
    """11 real frames, localised by the classical reference (fast): every command runs (RCC on 5
    segments of 2-3 frames, which agree)."""
    table = tmp_path / "locs.csv"
    assert main(["localize", str(SCMOS_REAL / "sample_11frames.tif"), "--out", str(table), "--pixel-size", "160",
                 "--baseline", "90.4", "--adu-per-e", "2.11", "--camera-type", "sCMOS", "--qe", "1"]) == 0
    capsys.readouterr()
    assert main(["drift", str(table), "--out", str(tmp_path / "dc.csv")]) == 0
    assert "(RCC: 5 segments of 2–3 frames, agreeing to ±" in capsys.readouterr().out
    assert main(["merge", str(table), "--out", str(tmp_path / "merged.csv")]) == 0
    assert len(read_localizations(tmp_path / "merged.csv")) < len(read_localizations(table))
    assert main(["render", str(table), "--out", str(tmp_path / "r.tif"), "--scale-bar-nm", "0"]) == 0
    assert main(["stats", str(table), "--json"]) == 0
    capsys.readouterr()
    code = main(["resolution", str(table), "--json"])
    output = capsys.readouterr()
    if code == 0:
        report = json.loads(output.out)
        assert 1 < report["nena_nm"] < 100
    else:
        assert code == 2 and "NeNA" in output.err
