"""The classical peers behind one call: (T, H, W) ADU frames + Camera -> our localisation table
(frame 0-based, x_nm / y_nm with pixel (0, 0) covering [0, px), photons).

Both peers put pixel k's centre at coordinate k (SMAPpy says so in `smappy.simulate.camera`;
Picasso's fits show it: a -0.5 px bias in x and y on our frames without the shift below), so
their positions get half a pixel added. Each peer has one parameter rule for every stack: the
PSF sigma it is told, a fit box of 7 px, and a detection threshold chosen once on validation
stacks (benchmarks/peers.py --tune), never per stack against the truth.

Needs the `[bench]` extra (smappy-smlm, picassosr); see `make bench`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from napari_var_emitter.io.camera import Camera

BOX_PX = 7
# SMAPpy's peak cutoff in photons on its DoG-filtered image ("absolute"): its default "dynamic"
# cutoff, a multiple of each frame's noise in that image, finds almost nothing at 2/µm², where
# the spots themselves raise the noise estimate (Jaccard 0.5 %)
SMAPPY_CUTOFF_PHOTONS = 6.0
# Picasso's minimum net gradient, in photo-electrons (its net gradient is computed on the ADU
# frames, so the value given is this / (e- per ADU) * EM gain)
PICASSO_MIN_NG_E = 250.0


def _table(frame, x_px, y_px, photons, pixel_size_nm: float) -> pd.DataFrame:
    """Peer positions (pixel k centred at k) -> our table in nm."""
    return pd.DataFrame({"frame": np.asarray(frame, np.int64),
                         "x_nm": (np.asarray(x_px, float) + 0.5) * pixel_size_nm,
                         "y_nm": (np.asarray(y_px, float) + 0.5) * pixel_size_nm,
                         "photons": np.asarray(photons, float)})


def smappy_localize(frames_adu: np.ndarray, camera: Camera, psf_sigma_nm: float,
                    cutoff_photons: float = SMAPPY_CUTOFF_PHOTONS) -> pd.DataFrame:
    """SMAPpy's fast-simple pipeline: DoG peak finding, Gaussian MLE fit with free sigma."""
    from smappy.api import fit

    px = camera.pixel_size_nm
    smappy_camera = {"conversion": camera.e_per_adu, "offset": camera.baseline_adu, "pixelsize_um": px / 1000.0,
                     "em_on": camera.em_gain > 1, "emgain": camera.em_gain, "read_noise_e": camera.read_noise_e}
    locs = fit(np.asarray(frames_adu), camera=smappy_camera, sigma=psf_sigma_nm / px, cutoff=cutoff_photons,
               cutoff_mode="absolute", roisize=BOX_PX, raw_frames=0, threads=1)
    c = locs.columns
    if not len(c.get("frame", [])):
        return _table([], [], [], [], px)
    # SMAPpy reports nm from its own pixel centres: back to pixels, then our convention
    return _table(c["frame"], np.asarray(c["x_nm"]) / px, np.asarray(c["y_nm"]) / px, c["photons"], px)


def picasso_localize(frames_adu: np.ndarray, camera: Camera, psf_sigma_nm: float,
                     min_ng_e: float = PICASSO_MIN_NG_E) -> pd.DataFrame:
    """Picasso Localize: net-gradient identification, Gaussian MLE fit ("gaussmle").
    psf_sigma_nm is not used: Picasso fits each spot's width."""
    from picasso import localize

    px = camera.pixel_size_nm
    info = {"Baseline": camera.baseline_adu, "Sensitivity": camera.e_per_adu, "Gain": camera.em_gain,
            "QE": 1.0, "Pixelsize": px}
    with tempfile.TemporaryDirectory() as tmp:  # Picasso fits memory-mapped movies only
        path = Path(tmp) / "movie.npy"
        np.save(path, np.asarray(frames_adu))
        movie = np.load(path, mmap_mode="r")
        found = localize.identify(movie, min_ng_e / camera.e_per_adu * camera.em_gain, BOX_PX, threaded=False)
        identifications = found[0] if isinstance(found, tuple) else found
        if len(identifications) == 0:
            return _table([], [], [], [], px)
        result = localize.fit(movie, camera_info=info, identifications=identifications, box=BOX_PX,
                              fitting_method="gaussmle", multiprocess=False)
        locs = result[0] if isinstance(result, tuple) else result
    return _table(locs["frame"], locs["x"], locs["y"], locs["photons"], px)
