import dataclasses
import json

import numpy as np
import pytest

from napari_var_emitter.errors import InputError
from napari_var_emitter.io.camera import Camera, frames_to_photons, merge_camera_values, resolve_camera
from napari_var_emitter.io.camera_check import check_camera_on_frames, noise_ratio
from napari_var_emitter.io.camera_profile import read_camera_profile, write_camera_profile
from napari_var_emitter.simulate.config import SimulationConfig
from napari_var_emitter.simulate.stack import simulate_stack


@pytest.mark.parametrize("camera", [
    Camera(),
    Camera(baseline_adu=400, e_per_adu=4.8, em_gain=150, qe=0.9, type="EMCCD"),
    Camera(baseline_adu=100, e_per_adu=0.45, qe=0.8),
])
def test_adu_photon_round_trip(camera):
    photons = np.array([[0.0, 1.0], [123.5, 5000.0]])
    np.testing.assert_allclose(camera.adu_to_photons(camera.photons_to_adu(photons)), photons,
                               rtol=1e-5, atol=1e-3)


def test_conversion_formula():
    camera = Camera(baseline_adu=100, e_per_adu=2.0, em_gain=100, qe=0.5, type="EMCCD")
    # (600 - 100) ADU * 2 e-/ADU / 100 gain / 0.5 QE = 20 photons
    assert camera.adu_to_photons(600) == pytest.approx(20.0)
    assert camera.excess_noise_factor == 2.0
    assert Camera().excess_noise_factor == 1.0


@pytest.mark.parametrize("bad, named", [
    ({"pixel_size_nm": 0}, "pixel_size_nm"), ({"e_per_adu": -1}, "e_per_adu"),
    ({"em_gain": 0.5}, "em_gain"), ({"qe": 1.5}, "qe"), ({"read_noise_e": -1}, "read_noise_e"),
    ({"type": "CCD"}, "type"), ({"em_gain": 10, "type": "sCMOS"}, "sCMOS camera has no EM gain"),
])
def test_invalid_camera_is_named(bad, named):
    with pytest.raises(InputError, match=named):
        Camera(**bad)


def test_resolve_precedence_and_default_warning():
    with pytest.warns(UserWarning, match="read_noise_e=1.0"):
        camera = resolve_camera({"pixel_size_nm": 160, "baseline_adu": 90},
                                {"baseline_adu": 100, "e_per_adu": None, "em_gain": 50},
                                context="x.tif")
    assert camera.pixel_size_nm == 160  # from the file
    assert camera.baseline_adu == 100  # the command line wins
    assert camera.e_per_adu == 1.0  # default (None counts as missing)
    assert camera.type == "EMCCD"  # implied by EM gain


def test_unknown_camera_field():
    with pytest.raises(InputError, match="unknown camera field"):
        Camera.from_dict({"gain": 3})


def test_nan_frame_is_named():
    frames = np.full((3, 4, 4), 110.0, dtype=np.float32)
    frames[2, 1, 1] = np.nan
    with pytest.raises(InputError, match="frame 13 .* NaN"):
        frames_to_photons(frames, Camera(), first_frame=10)


def test_one_merge_rule_for_file_profile_and_user_values():
    # a file that states EM gain but no type is an EMCCD, in every caller
    values, missing = merge_camera_values({"em_gain": 100, "pixel_size_nm": 160})
    assert values["type"] == "EMCCD" and "type" in values and "em_gain" not in missing
    assert "baseline_adu" in missing and "pixel_size_nm" not in missing
    # ADU per e- (storm-analysis, many camera sheets) is the inverse of e- per ADU
    values, _ = merge_camera_values({"e_per_adu": 2.0}, {"adu_per_e": 2.11})
    assert values["e_per_adu"] == pytest.approx(1 / 2.11)
    # an sCMOS camera does not ask for an EM gain
    _, missing = merge_camera_values({"type": "sCMOS"})
    assert "em_gain" not in missing and "offset_map" not in missing
    # a later source's camera type replaces an earlier one's, EM gain and all
    assert Camera.from_dict(merge_camera_values({"type": "sCMOS"}, {"em_gain": 100})[0]).type == "EMCCD"
    assert Camera.from_dict(merge_camera_values({"em_gain": 100}, {"type": "sCMOS"})[0]).em_gain == 1
    with pytest.raises(InputError, match="adu_per_e must be > 0"):
        merge_camera_values({"adu_per_e": 0})


def test_camera_profile_round_trip_and_bad_files(tmp_path):
    offset = tmp_path / "maps" / "offset.npy"
    offset.parent.mkdir()
    np.save(offset, np.full((8, 8), 90.0))
    camera = Camera(pixel_size_nm=160, e_per_adu=0.474, baseline_adu=90, offset_map=str(offset))
    path = write_camera_profile(tmp_path / "orca.json", camera, name="ORCA Flash 4")
    values = read_camera_profile(path)
    assert Camera.from_dict(values) == camera
    # map paths relative to the profile's folder are resolved
    document = json.loads(path.read_text())
    document["camera"]["offset_map"] = "maps/offset.npy"
    path.write_text(json.dumps(document))
    assert read_camera_profile(path)["offset_map"] == str(offset.resolve())
    (tmp_path / "not.json").write_text('{"pixel_size_nm": 100}')
    with pytest.raises(InputError, match="not a camera profile"):
        read_camera_profile(tmp_path / "not.json")
    with pytest.raises(InputError, match="no such file"):
        read_camera_profile(tmp_path / "missing.json")
    with pytest.raises(InputError, match=r"offset map \[ADU\] .*gone.npy: no such file"):
        Camera(offset_map=str(tmp_path / "gone.npy"))


def test_pixel_maps_convert_and_quieten_hot_pixels(tmp_path):
    rng = np.random.default_rng(0)
    shape = (32, 32)
    offset, gain = rng.uniform(85, 95, shape), rng.uniform(1.8, 2.4, shape)
    variance = np.full(shape, 5.0)
    variance[10, 12] = 2000.0  # one hot pixel
    for name, values in (("o", offset), ("v", variance), ("g", gain)):
        np.save(tmp_path / f"{name}.npy", values)
    camera = Camera(type="sCMOS", offset_map=str(tmp_path / "o.npy"), variance_map=str(tmp_path / "v.npy"),
                    gain_map=str(tmp_path / "g.npy"))
    electrons = np.full((2, *shape), 20.0)
    adu = offset + electrons * gain
    adu[:, 10, 12] += 400.0  # the hot pixel fires
    photons = frames_to_photons(adu, camera)
    assert np.allclose(np.delete(photons.reshape(2, -1), 10 * 32 + 12, axis=1), 20.0, atol=1e-3)
    # pulled back to its neighbours, by weight mu / (mu + excess) = 20 / (20 + ~450 e-^2): ~4 % of its spike left
    spike = 400.0 / gain[10, 12]
    assert 0 < photons[0, 10, 12] - 20.0 < 0.06 * spike
    wrong = np.zeros((1, 16, 16))
    with pytest.raises(InputError, match="calibration maps are 32x32 pixels but the frames are 16x16"):
        frames_to_photons(wrong, camera)
    np.save(tmp_path / "objects.npy", np.array([{"not": "numbers"}], dtype=object), allow_pickle=True)
    junk = Camera(type="sCMOS", offset_map=str(tmp_path / "objects.npy"))
    with pytest.raises(InputError, match=r"objects.npy: not readable \(not an array of numbers saved by numpy\)"):
        frames_to_photons(electrons, junk)  # never unpickled, and said in a microscopist's words
    np.save(tmp_path / "g16.npy", np.full((16, 16), 2.0))  # maps of two camera regions: each named with its size
    mixed = Camera(type="sCMOS", offset_map=str(tmp_path / "o.npy"), gain_map=str(tmp_path / "g16.npy"))
    with pytest.raises(InputError,
                       match=r"differ in size \(offset map \[ADU\] 32×32 px, gain map \[ADU/e⁻\] 16×16 px\)"):
        frames_to_photons(electrons, mixed)


@pytest.mark.parametrize("camera", [Camera(e_per_adu=0.5, read_noise_e=1.5),
                                    Camera(e_per_adu=10.0, em_gain=100.0, read_noise_e=50.0, type="EMCCD")])
def test_the_noise_check_warns_of_a_baseline_too_high_and_not_of_the_right_one(camera):
    config = SimulationConfig(frame_size=(64, 64), n_frames=12, density_per_um2=0.5, background_photons=50.0,
                              camera=camera)
    frames, _ = simulate_stack(config, np.random.default_rng(7))
    ratio, level = noise_ratio(camera, frames)
    assert 0.7 < ratio < 1.5 and 45 < level < 60  # the background, 50 photons/px
    assert not [m for m in check_camera_on_frames(camera, frames) if "frame-to-frame variance" in m]
    background_adu = 50.0 * camera.em_gain / camera.e_per_adu
    too_high = dataclasses.replace(camera, baseline_adu=camera.baseline_adu + background_adu)
    said = [m for m in check_camera_on_frames(too_high, frames) if "frame-to-frame variance" in m]
    assert len(said) == 1 and f"the baseline {too_high.baseline_adu:g} ADU is likely too high" in said[0]
    # a whole frame brighter or darker than the one before (flicker) is no noise; a frame of one value
    # (a failed read-out) is left out; too few pixels say nothing
    flicker = frames + (np.arange(len(frames)) % 3 * 0.1 * background_adu)[:, None, None].astype(np.uint16)
    assert noise_ratio(camera, flicker)[0] < 1.5
    failed = frames.copy()
    failed[:3] = 0
    assert 0.7 < noise_ratio(camera, failed)[0] < 1.5
    assert noise_ratio(camera, frames[:1]) is None and noise_ratio(camera, frames[:2, :8, :8]) is None
