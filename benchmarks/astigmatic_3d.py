"""3-D astigmatic localisation: PSF calibration from simulated beads, then the classical 3-D fitter
(localize --psf) on the NAIRR 3DAS validation movies (../shared/data/external; validation only)
and on our own astigmatic grid (three calibrations x densities 0.1 / 0.5 / 2 per µm²).

1. Beads simulated with the NAIRR curves (seeds 301-303): recovered sigma0, focus, depth, A, B
   and the largest error of sigma_x(z), sigma_y(z) in ±400 nm.
2. NAIRR 3DAS LD / MD / HD, localised with the calibration from seed 301's beads: Jaccard, lateral
   and axial RMSE, RMSE / CRLB per axis (bound from the true NAIRR curves, 2,400 photons, 30
   photons/px background + the Gaussian noise's variance of 20 photons² counted as background).
3. Our grid (grid_cells: seeds 311-319, beads 411, 414, 417): 100 frames of 64 x 64 px per cell.
4. With --monte-carlo (3.5 min more): the spread of 3-D MLE fits of 1,500 isolated NAIRR spots
   against crlb_3d_nm, at three depths and two brightnesses (seed 0).

Run: .venv/bin/python benchmarks/astigmatic_3d.py [--frames N] [--monte-carlo]
(prints tables; asserts nothing)
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from napari_var_emitter.classical.localize import localize_stack
from napari_var_emitter.fit.mle import fit_spots_3d
from napari_var_emitter.evaluate.crlb import crlb_3d_nm
from napari_var_emitter.evaluate.metrics import evaluate
from napari_var_emitter.io.camera import Camera
from napari_var_emitter.io.emitters_h5 import GroundTruth
from napari_var_emitter.psf import PSF, DefocusCurve, render_spots
from napari_var_emitter.psf_calibration.defocus import calibrate_psf
from napari_var_emitter.simulate.beads import simulate_bead_stack
from napari_var_emitter.simulate.camera_noise import expose
from napari_var_emitter.simulate.config import SimulationConfig
from napari_var_emitter.simulate.stack import simulate_stack

EXTERNAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "external"
NAIRR_PSF = PSF(astigmatism=True, curve_x=DefocusCurve(140, -205, 290, 0.05, 0.03),
                curve_y=DefocusCurve(135, 205, 290, -0.01, 0.02), z_range_nm=(-400, 400))
NAIRR_CAMERA = Camera(pixel_size_nm=100.0, baseline_adu=500.0, e_per_adu=1.0, read_noise_e=float(np.sqrt(20.0)))
BEAD_CAMERA = Camera(pixel_size_nm=100.0, baseline_adu=100.0, e_per_adu=0.5, read_noise_e=1.5)
OWN_CALIBRATIONS = {
    "wide-shallow": PSF(astigmatism=True, curve_x=DefocusCurve(150, -250, 350, 0.02, 0.01),
                        curve_y=DefocusCurve(145, 250, 330, -0.03, 0.02), z_range_nm=(-500, 500)),
    "narrow-steep": PSF(astigmatism=True, curve_x=DefocusCurve(120, -150, 250, 0.04, 0.0),
                        curve_y=DefocusCurve(125, 170, 260, 0.0, 0.03), z_range_nm=(-400, 400)),
    "asymmetric": PSF(astigmatism=True, curve_x=DefocusCurve(135, -300, 400, 0.0, 0.02),
                      curve_y=DefocusCurve(130, 220, 300, 0.05, 0.0), z_range_nm=(-500, 500)),
}
AXES = ("jaccard", "rmse_lateral_nm", "rmse_axial_nm", "rmse_over_crlb_x", "rmse_over_crlb_y", "rmse_over_crlb_z",
        "efficiency_axial")


def grid_cells(n_frames: int = 100, names=tuple(OWN_CALIBRATIONS)):
    """Our astigmatic grid: for calibration i of OWN_CALIBRATIONS (those `names` keeps) and density j
    of 0.1 / 0.5 / 2 per µm², a stack of `n_frames` 64 x 64 px frames (3,000 photons, 30
    photons/px, simulated from seed 311 + 3i + j through the true calibration) and the calibration
    recovered from beads (seed 411 + 3i): yields (name, density, recovered PSF, frames, truth)."""
    for i, (name, true_psf) in enumerate(OWN_CALIBRATIONS.items()):
        if name not in names:
            continue
        psf = grid_calibration(name)
        for j, density in enumerate((0.1, 0.5, 2.0)):
            config = SimulationConfig(frame_size=(64, 64), n_frames=n_frames, density_per_um2=density,
                                      photons_mean=3000.0, background_photons=30.0, psf=true_psf, camera=BEAD_CAMERA)
            frames, truth = simulate_stack(config, np.random.default_rng(311 + 3 * i + j))
            yield name, density, psf, frames, truth


def grid_calibration(name: str) -> PSF:
    """The grid's calibration `name` as recovered from its simulated beads (seed 411 + 3i for
    the i-th of OWN_CALIBRATIONS)."""
    return calibration_from_beads(OWN_CALIBRATIONS[name], 411 + 3 * list(OWN_CALIBRATIONS).index(name))


def calibration_from_beads(psf: PSF, seed: int) -> PSF:
    frames, _ = simulate_bead_stack(psf, BEAD_CAMERA, np.random.default_rng(seed), n_beads=12,
                                    frame_size=(160, 160), n_slices=101, z_step_nm=16.0)
    return calibrate_psf(frames, BEAD_CAMERA, 16.0).psf


def recovery_rows(seeds=(301, 302, 303)) -> PSF:
    z = np.linspace(-400, 400, 161)
    print("## NAIRR curves recovered from simulated beads (12 beads placed, 101 slices of 16 nm, 20,000 photons)")
    first = None
    for seed in seeds:
        psf = calibration_from_beads(NAIRR_PSF, seed)
        first = first or psf
        worst = max(float(np.max(np.abs(f / t - 1))) for f, t in zip(psf.sigmas_nm(z), NAIRR_PSF.sigmas_nm(z)))
        for axis in ("x", "y"):
            true, got = getattr(NAIRR_PSF, f"curve_{axis}"), getattr(psf, f"curve_{axis}")
            rel = [100 * (getattr(got, f) / getattr(true, f) - 1) for f in ("sigma0_nm", "focus_nm", "depth_nm")]
            print(f"seed {seed} {axis}: sigma0 {rel[0]:+.2f} %, focus {rel[1]:+.2f} %, depth {rel[2]:+.2f} %, "
                  f"A {got.cubic:+.4f} (true {true.cubic:+.2f}), B {got.quartic:+.4f} (true {true.quartic:+.2f})")
        print(f"seed {seed}: largest sigma(z) error in ±400 nm {100 * worst:.2f} %")
    return first


def nairr_rows(localise, method: str, max_frames: int | None) -> None:
    """Score `localise(frames ADU with NAIRR_CAMERA) -> table` on NAIRR 3DAS LD / MD / HD."""
    print(f"\n## NAIRR 3DAS, {method} with the calibration from seed 301's beads")
    print(f"{'set':<8} " + " ".join(f"{a:>17}" for a in AXES) + f" {'frames/s':>9}")
    for density in ("LD", "MD", "HD"):
        folder = EXTERNAL / "nairr" / f"3DAS_{density}"
        frames = tifffile.imread(folder / f"3DAS_{density}_Validate_Frame.tif")[:max_frames]
        csv = pd.read_csv(folder / f"3DAS_{density}_Validate_xyz.csv")
        truth = pd.DataFrame({"frame": csv["Frame"] - 1, "x_nm": csv["x (nm)"], "y_nm": csv["y (nm)"],
                              "z_nm": csv["z (nm)"], "photons": csv["Intensity (photons)"].astype(float),
                              "background": 50.0, "id": csv["Emitter"]})
        truth = truth[truth["frame"] < len(frames)].reset_index(drop=True)
        started = time.perf_counter()
        table = localise(frames)
        rate = len(frames) / (time.perf_counter() - started)
        ground = GroundTruth(truth, NAIRR_CAMERA, NAIRR_PSF.to_dict(), frames.shape[1:], len(frames))
        report = evaluate(table, ground)
        print(f"{density:<8} " + " ".join(f"{report[a]:17.2f}" for a in AXES) + f" {rate:9.1f}", flush=True)


def own_grid_rows() -> None:
    print("\n## Our astigmatic grid, classical 3-D fit with each calibration recovered from its own simulated beads")
    print(f"{'calibration':<13} {'/µm²':>5} " + " ".join(f"{a:>17}" for a in AXES))
    for name, density, psf, frames, truth in grid_cells():
        report = evaluate(localize_stack(frames, BEAD_CAMERA, psf=psf), truth, min_photons=1000)
        print(f"{name:<13} {density:5.1f} " + " ".join(f"{report[a]:17.2f}" for a in AXES), flush=True)


def monte_carlo_rows(n: int = 1500, size: int = 25) -> None:
    print("\n## 3-D MLE spread against the 3-D Cramér–Rao bound (NAIRR PSF, 100 nm pixels)")
    psf = dataclasses.replace(NAIRR_PSF, z_range_nm=(-600.0, 600.0))
    camera = Camera(pixel_size_nm=100.0, baseline_adu=100.0, e_per_adu=0.05, read_noise_e=0.0)
    rng = np.random.default_rng(0)
    for photons, background in ((2400, 30), (1000, 10)):
        for z0 in (-400.0, 0.0, 300.0):
            x, y, z = size / 2 - 0.5 + rng.uniform(0, 1, n), size / 2 - 0.5 + rng.uniform(0, 1, n), np.full(n, z0)
            sx, sy = (s / 100.0 for s in psf.sigmas_nm(z))
            expected = render_spots((n, size, size), np.arange(n), x, y, sx, sy, np.full(n, float(photons)))
            fit = fit_spots_3d(camera.adu_to_photons(expose(expected + background, camera, rng)), psf, 100.0)
            spread = (np.std(fit["x_px"] - x) * 100, np.std(fit["y_px"] - y) * 100, np.std(fit["z_nm"] - z))
            bound = [float(b[0]) for b in crlb_3d_nm(photons, background, z0, psf, 100.0)]
            print(f"{photons} photons, {background}/px, z {z0:+.0f} nm: fit SD x/y/z "
                  + " / ".join(f"{v:.1f}" for v in spread) + " nm; bound " + " / ".join(f"{v:.1f}" for v in bound))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, help="at most this many frames per NAIRR set")
    parser.add_argument("--monte-carlo", action="store_true", help="also the MLE spread against the bound")
    args = parser.parse_args()
    psf = recovery_rows()
    if (EXTERNAL / "nairr").is_dir():
        nairr_rows(lambda frames: localize_stack(frames, NAIRR_CAMERA, psf=psf), "classical 3-D fit (localize --psf)",
                   args.frames)
    else:
        print(f"\n{EXTERNAL / 'nairr'} is missing: NAIRR rows left out")
    own_grid_rows()
    if args.monte_carlo:
        monte_carlo_rows()


if __name__ == "__main__":
    main()
