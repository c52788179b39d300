"""The conventions of docs/conventions.md, each checked once."""

import numpy as np
import pandas as pd

from napari_var_emitter.fit.mle import fit_spots
from napari_var_emitter.io.localizations_csv import read_localizations_csv, write_localizations_csv
from napari_var_emitter.psf import render_spots


def _render_one(x_nm, y_nm, pixel_nm=100.0, shape=(1, 7, 9)):
    return render_spots(shape, np.array([0]), np.array([x_nm / pixel_nm]), np.array([y_nm / pixel_nm]),
                        np.array([1.0]), np.array([1.0]), np.array([1000.0]))[0]


def test_emitter_at_half_pixel_peaks_in_pixel_zero():
    image = _render_one(50.0, 50.0)
    assert np.unravel_index(image.argmax(), image.shape) == (0, 0)
    # centred in pixel (0, 0): its neighbours right and below get equal light
    assert image[0, 1] == image[1, 0]


def test_x_is_the_column_axis():
    image = _render_one(x_nm=650.0, y_nm=250.0)
    assert np.unravel_index(image.argmax(), image.shape) == (2, 6)  # (row = y, col = x)


def test_fit_returns_pixel_centre_convention():
    roi = render_spots((1, 7, 7), np.array([0]), np.array([3.5]), np.array([3.5]),
                       np.array([1.3]), np.array([1.3]), np.array([5000.0]))[0] + 10
    fit = fit_spots(roi[None], 1.3)
    assert abs(fit["x_px"][0] - 3.5) < 1e-3 and abs(fit["y_px"][0] - 3.5) < 1e-3


def test_frames_are_one_based_in_csv(tmp_path):
    table = pd.DataFrame({"frame": [0, 4], "x_nm": [1.0, 2.0], "y_nm": [3.0, 4.0]})
    write_localizations_csv(tmp_path / "a.csv", table)
    raw = pd.read_csv(tmp_path / "a.csv")
    assert raw["frame"].tolist() == [1, 5]
    assert read_localizations_csv(tmp_path / "a.csv")["frame"].tolist() == [0, 4]
