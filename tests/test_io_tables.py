from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from napari_var_emitter.errors import InputError
from napari_var_emitter.io.emitters_h5 import read_emitters_h5, write_emitters_h5
from napari_var_emitter.io.localizations import read_localizations, write_localizations
from napari_var_emitter.io.localizations_csv import read_localizations_csv, write_localizations_csv
from napari_var_emitter.io.localizations_h5 import read_localizations_h5, write_localizations_h5_stream

TABLE = pd.DataFrame({
    "frame": [0, 0, 3], "x_nm": [50.0, 1234.5, 9.25], "y_nm": [60.0, 70.5, 8000.0],
    "sigma_nm": [130.0, 128.0, 131.0], "photons": [2000.0, 1500.5, 800.0],
    "background": [50.0, 49.0, 51.0], "uncertainty_nm": [8.0, 9.5, 20.0],
    "probability": [0.99, 0.75, 0.5],
})


def test_csv_round_trip_and_thunderstorm_header(tmp_path):
    path = tmp_path / "loc.csv"
    write_localizations_csv(path, TABLE)
    header = path.read_text().splitlines()[0]
    assert header == ('"id","frame","x [nm]","y [nm]","sigma [nm]","intensity [photon]",'
                      '"offset [photon]","uncertainty [nm]","probability"')
    back = read_localizations_csv(path)
    pd.testing.assert_frame_equal(back.drop(columns="id"), TABLE, check_dtype=False)
    assert back["id"].tolist() == [1, 2, 3]



def test_h5_localisations_stream_and_round_trip(tmp_path):
    path = tmp_path / "loc.h5"
    rows = write_localizations_h5_stream(path, [TABLE.iloc[:2], TABLE.iloc[:0], TABLE.iloc[2:]])
    assert rows == 3
    with h5py.File(path) as f:
        assert list(f["localizations"]) == [*TABLE.columns, "id"]  # column order kept
        assert f["localizations/frame"][()].tolist() == [0, 0, 3]  # 0-based, unlike the CSV
    back = read_localizations(path)
    pd.testing.assert_frame_equal(back.drop(columns="id"), TABLE, check_dtype=False)
    assert back["id"].tolist() == [1, 2, 3]
    write_localizations(tmp_path / "loc.csv", TABLE)  # the same table, by extension
    pd.testing.assert_frame_equal(read_localizations(tmp_path / "loc.csv"), back[read_localizations(
        tmp_path / "loc.csv").columns], check_dtype=False)
    with pytest.raises(ValueError, match="differ in columns"):
        write_localizations_h5_stream(tmp_path / "mixed.h5", [TABLE, TABLE.drop(columns="sigma_nm")])
    assert not (tmp_path / "mixed.h5").exists()  # atomic: nothing left behind


def test_bad_localisations_h5(tmp_path, small_stack):
    write_emitters_h5(tmp_path / "emitters.h5", small_stack[1])
    with pytest.raises(InputError, match="not a localisations file"):
        read_localizations_h5(tmp_path / "emitters.h5")
    write_localizations_h5_stream(tmp_path / "nan.h5", [TABLE])
    with h5py.File(tmp_path / "nan.h5", "a") as f:
        f["localizations/x_nm"][1] = np.nan
    with pytest.raises(InputError, match="x_nm"):
        read_localizations_h5(tmp_path / "nan.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(InputError, match="not a readable HDF5"):
        read_localizations_h5(tmp_path / "junk.h5")

def test_independent_thunderstorm_reader(tmp_path):
    locan = pytest.importorskip("locan")
    path = tmp_path / "loc.csv"
    write_localizations_csv(path, TABLE.assign(z_nm=[1.0, 2.0, 3.0]))
    data = locan.load_thunderstorm_file(path).data
    np.testing.assert_allclose(data["position_x"], TABLE["x_nm"])
    np.testing.assert_allclose(data["position_y"], TABLE["y_nm"])
    np.testing.assert_allclose(data["position_z"], [1.0, 2.0, 3.0])
    np.testing.assert_allclose(data["frame"], TABLE["frame"] + 1)
    np.testing.assert_allclose(data["intensity"], TABLE["photons"])


@pytest.mark.parametrize("text, message", [
    ('"id","frame","x [nm]"\n1,1,3\n', r"missing column\(s\) \['y_nm'\]"),
    ('"frame","x [nm]","y [nm]"\n1,1,nan\n', "'y_nm' has 1 missing/NaN"),
    ('"frame","x [nm]","y [nm]"\n1,1,abc\n', "'y_nm' has 1 missing/NaN/non-numeric"),
    ('"frame","x [px]","y [px]"\n1,1,2\n', "positions are in pixels"),
    ('"frame","x [nm]","y [nm]"\n0,1,2\n', "1-based"),
    ('"frame","x [nm]","y [nm]"\n1.5,1,2\n', "whole numbers"),
    ("", "not a readable CSV"),
])
def test_bad_csv(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_localizations_csv(path)


def test_h5_round_trip(tmp_path, small_stack):
    _, truth = small_stack
    write_emitters_h5(tmp_path / "e.h5", truth)
    back = read_emitters_h5(tmp_path / "e.h5")
    pd.testing.assert_frame_equal(back.emitters, truth.emitters, check_dtype=False)
    assert back.camera == truth.camera and back.psf == truth.psf
    assert back.frame_shape == truth.frame_shape and back.n_frames == truth.n_frames
    with h5py.File(tmp_path / "e.h5") as f:
        assert f.attrs["pixel_size_nm"] == truth.camera.pixel_size_nm
        assert f.attrs["schema_version"] == 1


def _damage(path, how):
    with h5py.File(path, "a") as f:
        if how == "nan":
            f["emitters/x_nm"][1] = np.nan
        elif how == "missing":
            del f["emitters/photons"]
        elif how == "newer":
            f.attrs["schema_version"] = 99
        elif how == "schema":
            del f.attrs["schema"]
        elif how == "length":
            del f["emitters/id"]
            f["emitters/id"] = np.arange(3)


@pytest.mark.parametrize("how, message", [
    ("nan", "'x_nm' has 1 missing/NaN"), ("missing", r"lacks column\(s\) \['photons'\]"),
    ("newer", "newer than"), ("schema", "not an emitters file"), ("length", "equal length"),
])
def test_bad_h5(tmp_path, small_stack, how, message):
    path = tmp_path / "e.h5"
    write_emitters_h5(path, small_stack[1])
    _damage(path, how)
    with pytest.raises(InputError, match=message):
        read_emitters_h5(path)


def test_not_hdf5(tmp_path):
    (tmp_path / "e.h5").write_text("hello")
    with pytest.raises(InputError, match="not a readable HDF5"):
        read_emitters_h5(tmp_path / "e.h5")


def test_written_files_get_the_usual_permissions(tmp_path):
    import os

    umask = os.umask(0)
    os.umask(umask)
    write_localizations_csv(tmp_path / "a.csv", TABLE)
    assert (tmp_path / "a.csv").stat().st_mode & 0o777 == 0o666 & ~umask


PICASSO = Path(__file__).resolve().parents[2] / "shared" / "data" / "external" / "picasso-testdata-sim"


def test_smlm_challenge_csv_with_header_and_headerless(tmp_path):
    named = tmp_path / "truth.csv"
    named.write_text("frame,xnano,ynano,znano,intensity\n1,150.5,2500.0,-100,3000\n4,80.0,90.0,0,1500\n")
    table = read_localizations(named)
    assert table["frame"].tolist() == [0, 3] and table["x_nm"].tolist() == [150.5, 80.0]
    assert table["z_nm"].tolist() == [-100, 0] and table["photons"].tolist() == [3000, 1500]
    bare = tmp_path / "activations.csv"  # the 2016 challenge: index, frame, x, y, z, intensity, no header
    bare.write_text("1,1,150.5,2500.0,-100,3000\n2,4,80.0,90.0,0,1500\n")
    pd.testing.assert_frame_equal(read_localizations(bare)[table.columns], table)
    nairr = tmp_path / "nairr.csv"  # NAIRR-SMLM's ground truth as its sets ship it (a user could not evaluate)
    nairr.write_text("No,Frame,Emitter,x (nm),y (nm),z (nm),sigma (nm),Intensity (photons),Offset (photons),"
                     "BkgSD (photons)\n1,1,7,150.5,2500.0,-100,108.8,3000,500,8\n2,4,9,80.0,90.0,0,108.8,1500,500,8\n")
    from_nairr = read_localizations(nairr)
    pd.testing.assert_frame_equal(from_nairr[table.columns], table)
    assert from_nairr["id"].tolist() == [7, 9]
    (tmp_path / "zero.csv").write_text("frame,xnano,ynano\n0,1,2\n")
    with pytest.raises(InputError, match="1-based"):
        read_localizations(tmp_path / "zero.csv")


def test_unknown_layout_names_the_columns_found(tmp_path):
    (tmp_path / "other.csv").write_text("t,posx,posy\n1,2,3\n")
    with pytest.raises(InputError, match=r"columns \['posx', 'posy', 't'\] fit none.*SMLM challenge"):
        read_localizations(tmp_path / "other.csv")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["spots"] = np.zeros(3)
    with pytest.raises(InputError, match=r"datasets \['spots'\] fit none"):
        read_localizations(tmp_path / "other.h5")


def test_picasso_hdf5_pixel_centre_units_to_nm(tmp_path):
    locs = np.zeros(2, dtype=[("frame", "<u4"), ("x", "<f4"), ("y", "<f4"), ("photons", "<f4"), ("sx", "<f4"),
                              ("sy", "<f4"), ("bg", "<f4"), ("lpx", "<f4"), ("lpy", "<f4")])
    locs["frame"], locs["x"], locs["y"], locs["lpx"], locs["lpy"] = [0, 5], [0.0, 9.5], [2.0, 3.25], 0.1, 0.1
    with h5py.File(tmp_path / "locs.hdf5", "w") as f:
        f["locs"] = locs
    with pytest.raises(InputError, match="give the pixel size"):
        read_localizations(tmp_path / "locs.hdf5")
    (tmp_path / "locs.yaml").write_text("Generated by: Picasso Localize\n---\nPixelsize: 160\n")
    table = read_localizations(tmp_path / "locs.hdf5")
    # x = 0 is the centre of pixel 0, which covers [0, 160) nm
    assert table["x_nm"].tolist() == [80.0, 1600.0] and table["y_nm"].tolist() == [400.0, 600.0]
    assert table["frame"].tolist() == [0, 5] and table["uncertainty_nm"].iloc[0] == pytest.approx(16.0)
    assert read_localizations(tmp_path / "locs.hdf5", pixel_size_nm=100)["x_nm"].iloc[1] == 1000.0


@pytest.mark.skipif(not PICASSO.is_dir(), reason="../shared/data/external is not here")
def test_picasso_own_localisations_lie_on_its_binding_sites():
    """Picasso's MLE localisations of its test movie (pixel size from its yaml) fall within a
    few nm of the simulated binding sites (its yaml, pixel-edge origin), so the conversion
    to nm is right to better than a tenth of a pixel."""
    import yaml

    table = read_localizations(PICASSO / "testdata_locs.hdf5")
    sim = next(yaml.safe_load_all((PICASSO / "testdata.yaml").read_text()))
    sites = np.column_stack([np.array(sim["Structure.HandleX"].split(","), float),
                             np.array(sim["Structure.HandleY"].split(","), float)]) * 160.0
    nearest = np.hypot(*(table[["x_nm", "y_nm"]].to_numpy()[:, None] - sites[None]).transpose(2, 0, 1)).min(1)
    assert len(table) == 564 and np.median(nearest) < 16.0
