import numpy as np
import pytest

from napari_var_emitter.errors import InputError
from napari_var_emitter.io.camera import Camera, frames_to_photons, resolve_camera


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
    with pytest.raises(InputError, match="frame 12 .* NaN"):
        frames_to_photons(frames, Camera(), first_frame=10)
