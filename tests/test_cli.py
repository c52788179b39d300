import json
import subprocess
import sys

import numpy as np
import pytest

from napari_var_emitter.cli import main
from napari_var_emitter.io.camera import Camera
from napari_var_emitter.io.emitters_h5 import read_emitters_h5
from napari_var_emitter.io.localizations_csv import read_localizations_csv
from napari_var_emitter.io.tiff import write_ome_tiff


@pytest.mark.parametrize("command", ["simulate", "localize", "evaluate", "demo"])
def test_help_for_each_command(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert f"var-emitter {command}" in capsys.readouterr().out


def test_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "napari_var_emitter", "--help"],
                            capture_output=True, text=True, check=True)
    assert "simulate" in result.stdout and "evaluate" in result.stdout


def test_simulate_localize_evaluate(tmp_path, capsys):
    out = tmp_path / "data"
    assert main(["simulate", str(out), "--n-samples", "1", "--n-frames", "10", "--frame-size", "48",
                 "--density", "0.3", "--photons", "4000", "--background", "20",
                 "--set", "camera.baseline_adu=50", "--seed", "3"]) == 0
    sample = out / "sample_48_000"
    assert read_emitters_h5(sample / "emitters.h5").camera.baseline_adu == 50
    csv = tmp_path / "loc.csv"
    assert main(["localize", str(sample / "sample_48_000.ome.tiff"), "--out", str(csv)]) == 0
    assert len(read_localizations_csv(csv)) > 0
    capsys.readouterr()
    assert main(["evaluate", str(csv), str(sample / "emitters.h5"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["jaccard"] > 50 and abs(report["bias_x_nm"]) < 10
    assert main(["evaluate", str(csv), str(sample / "emitters.h5")]) == 0
    assert "jaccard" in capsys.readouterr().out
    # the same truth as an SMLM challenge CSV (1-based frames, xnano/ynano): the same scores, no CRLB
    truth = read_emitters_h5(sample / "emitters.h5").emitters
    challenge = tmp_path / "truth.csv"
    truth.assign(frame=truth["frame"] + 1).rename(columns={"x_nm": "xnano", "y_nm": "ynano", "z_nm": "znano",
                                                            "photons": "intensity"})[
        ["frame", "xnano", "ynano", "znano", "intensity"]].to_csv(challenge, index=False)
    assert main(["evaluate", str(csv), str(challenge), "--json"]) == 0
    from_csv = json.loads(capsys.readouterr().out)
    assert {k: from_csv[k] for k in ("tp", "fp", "fn", "rmse_lateral_nm")} == \
        {k: report[k] for k in ("tp", "fp", "fn", "rmse_lateral_nm")}
    assert "rmse_over_crlb" not in from_csv and "rmse_over_crlb" in report
    # no match: strict JSON (null, not NaN, which jq refuses); a radius of 0 matches nothing: refused
    far = tmp_path / "far.csv"
    truth.assign(frame=truth["frame"] + 1, xnano=truth["x_nm"] + 1e5, ynano=truth["y_nm"])[
        ["frame", "xnano", "ynano"]].to_csv(far, index=False)
    assert main(["evaluate", str(csv), str(far), "--json"]) == 0
    text = capsys.readouterr().out
    assert "NaN" not in text and json.loads(text)["rmse_lateral_nm"] is None
    assert main(["evaluate", str(csv), str(challenge), "--tolerance-nm", "0"]) == 2
    assert "--tolerance-nm 0: a match needs a radius above 0 nm" in capsys.readouterr().err


def test_print_config_and_config_file(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("psf:\n  sigma_nm: 150\nstructure:\n  kind: rings\n")
    assert main(["simulate", str(tmp_path / "o"), "--config", str(config), "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["psf"]["sigma_nm"] == 150 and printed["structure"]["kind"] == "rings"


def test_nan_frame_fails_clearly_and_writes_nothing(tmp_path, capsys):
    frames = np.full((4, 16, 16), 120.0, dtype=np.float32)
    frames[2, 5, 5] = np.nan
    write_ome_tiff(tmp_path / "f.ome.tiff", frames, Camera())
    out = tmp_path / "loc.csv"
    assert main(["localize", str(tmp_path / "f.ome.tiff"), "--out", str(out)]) == 2
    assert "frame 3 (1-based) contains NaN" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["localize", "missing.tif", "--out", "x.csv"], "no such file"),
    (["simulate", "o", "--set", "psf.sigmaa=3", "--print-config"], "unknown key"),
    (["simulate", "o", "--set", "camera.qe=2", "--print-config"], "(qe) must be in"),
])
def test_errors_are_one_clear_line(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_camera_profile_and_adu_per_e_flag(tmp_path, small_stack):
    """--camera PROFILE.json sits between the file's metadata and the flags; ADU/e- is taken as
    the inverse of e-/ADU; the same camera given three ways gives the same localisations."""
    from napari_var_emitter.io.camera_profile import write_camera_profile

    frames, truth = small_stack
    stack = tmp_path / "s.ome.tiff"
    write_ome_tiff(stack, frames[:3], Camera(pixel_size_nm=100, baseline_adu=100, e_per_adu=1.0))
    profile = write_camera_profile(tmp_path / "cam.json", Camera(pixel_size_nm=100, baseline_adu=100, e_per_adu=2.0))
    outputs = {}
    for name, flags in {"flag": ["--e-per-adu", "2"], "inverse": ["--adu-per-e", "0.5"],
                        "profile": ["--camera", str(profile)]}.items():
        outputs[name] = tmp_path / f"{name}.csv"
        assert main(["localize", str(stack), "--out", str(outputs[name]), *flags]) == 0
    tables = {name: read_localizations_csv(path) for name, path in outputs.items()}
    assert len(tables["flag"]) > 10
    for name in ("inverse", "profile"):
        np.testing.assert_allclose(tables[name]["photons"], tables["flag"]["photons"], rtol=1e-5)
    # a flag wins over the profile
    for name, flags in {"both": ["--camera", str(profile), "--e-per-adu", "4"], "four": ["--e-per-adu", "4"]}.items():
        assert main(["localize", str(stack), "--out", str(tmp_path / f"{name}.csv"), *flags]) == 0
    both, four = (read_localizations_csv(tmp_path / f"{name}.csv") for name in ("both", "four"))
    assert len(both) and not np.allclose(both["photons"].median(), tables["flag"]["photons"].median(), rtol=0.2)
    np.testing.assert_allclose(both["photons"], four["photons"], rtol=1e-5)
