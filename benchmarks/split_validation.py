"""How the model selection of the refinement (fit/split.py) was chosen: on our own validation stacks
(seeds 12,000,000+), the network's detections refined with splits off and with each setting
(MISFIT_GATE, SPLIT_LOGLIK, WIDER_LOGLIK) of a grid; per setting, summed over the stacks: the emitters split off,
how many of them match a true emitter (true splits; matching within 250 nm), Jaccard and lateral
RMSE over every match. The PSF sigma is estimated from the data as a run does (the true one
where no spot is isolated enough for that).

Stacks: 128x128, 20 frames, sCMOS and EMCCD, 0.1 to 4 emitters/µm², 2,000 photons on 50/px, plus
bright spots (8,000 photons) under a PSF with a 15 % halo the fit does not model (false splits on
a PSF the Gaussian misses), and bright spots one pixel wide (6,000 photons on 140/px, 160 nm
pixels) at 1 and 3 /µm².

With --sigma-factor F the fits get the PSF sigma times F: how the splits fare when the sigma is
wrong (the test against one spot of free width is for that).

Run: .venv/bin/python benchmarks/split_validation.py [--seed-base 12000000] [--frames 20] [--only TEXT]
     [--gates G ...] [--logliks L ...] [--widers W ...] [--sigma-factor F]
Prints one row per setting; asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools

import numpy as np

from external import FAR_NM

from napari_var_emitter.evaluate.matching import match_frames
from napari_var_emitter.fit import split
from napari_var_emitter.fit.joint import RoundSpots
from napari_var_emitter.fit.refine import SPLIT, refine_table
from napari_var_emitter.io.camera import Camera, frames_to_photons
from napari_var_emitter.predict import PredictOptions, predict
from napari_var_emitter.predict.frames import with_psf_sigma
from napari_var_emitter.predict.model_cache import cached_model
from napari_var_emitter.psf import PSF
from napari_var_emitter.simulate.config import SimulationConfig
from napari_var_emitter.simulate.stack import simulate_stack

GATES = (0.9, 1.1, 1.3)
LOGLIKS = (10.0, 15.0, 20.0, 40.0, 80.0)
SCMOS = Camera(e_per_adu=0.5, read_noise_e=1.5)
EMCCD = Camera(e_per_adu=10.0, em_gain=100.0, read_noise_e=50.0, type="EMCCD")


def stacks(size: int, frames: int):
    """(name, SimulationConfig) of the validation stacks."""
    for camera_name, camera in (("sCMOS", SCMOS), ("EMCCD", EMCCD)):
        for density in (0.1, 0.5, 1.0, 2.0, 4.0):
            yield (f"{camera_name} {density:g}/µm²", SimulationConfig(
                frame_size=(size, size), n_frames=frames, density_per_um2=density, camera=camera))
    yield ("sCMOS 0.5/µm² 8,000 photons, 15 % halo", SimulationConfig(
        frame_size=(size, size), n_frames=frames, density_per_um2=0.5, photons_mean=8000.0,
        psf=PSF(halo_fraction=0.15), camera=SCMOS))
    for density in (1.0, 3.0):  # bright spots one pixel wide on 160 nm pixels
        yield (f"sCMOS 160 nm px, σ 1 px, 6,000 photons, {density:g}/µm²", SimulationConfig(
            frame_size=(size, size), n_frames=frames, density_per_um2=density, photons_mean=6000.0,
            background_photons=140.0, psf=PSF(sigma_nm=160.0), camera=dataclasses.replace(SCMOS, pixel_size_nm=160.0)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed-base", type=int, default=12_000_000)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--only", help="the stacks whose name holds this text")
    parser.add_argument("--gates", type=float, nargs="+", default=GATES)
    parser.add_argument("--logliks", type=float, nargs="+", default=LOGLIKS, help="SPLIT_LOGLIK: over one spot")
    parser.add_argument("--widers", type=float, nargs="+", default=[split.WIDER_LOGLIK],
                        help="WIDER_LOGLIK: over one spot of free width")
    parser.add_argument("--sigma-factor", type=float, default=1.0,
                        help="fit with the estimated PSF sigma times this (a PSF the fit gets wrong)")
    args = parser.parse_args()
    model = cached_model(PredictOptions().weights)[0]
    settings = [(np.inf, np.inf, np.inf)] + list(itertools.product(args.gates, args.logliks, args.widers))
    totals = {s: np.zeros(5) for s in settings}  # splits, true splits, matches, tables + truths, squared error
    for k, (name, config) in enumerate(stacks(args.size, args.frames)):
        if args.only and args.only not in name:
            continue
        frames, truth = simulate_stack(config, np.random.default_rng(args.seed_base + 300 + k))
        camera = config.camera
        options, _ = with_psf_sigma(PredictOptions(), model, frames, camera)
        network = predict(frames, camera, dataclasses.replace(options, refine=False)).table
        photons = frames_to_photons(frames, camera)
        # the estimate, or where no spot is isolated enough to estimate it from, the true sigma
        sigma_nm = options.psf_sigma_nm if options.refine else config.psf.sigma_nm
        spots = RoundSpots(args.sigma_factor * sigma_nm / camera.pixel_size_nm)
        for gate, loglik, wider in settings:
            split.MISFIT_GATE, split.SPLIT_LOGLIK, split.WIDER_LOGLIK = gate, loglik, wider
            table = refine_table(network, photons, camera, spots)
            p, t = match_frames(table, truth.emitters, FAR_NM)
            new = np.flatnonzero(table["fitted"].to_numpy() == SPLIT)
            error = ((table["x_nm"].to_numpy()[p] - truth.emitters["x_nm"].to_numpy()[t]) ** 2
                     + (table["y_nm"].to_numpy()[p] - truth.emitters["y_nm"].to_numpy()[t]) ** 2)
            figures = np.array([len(new), np.isin(new, p).sum(), len(p), len(table) + len(truth.emitters),
                                error.sum()])
            totals[(gate, loglik, wider)] += figures
            print(f"{name:>40}  gate {gate:>4}  2ΔlogL ≥ {loglik:>5}, {wider:>5}: splits {len(new):4d} "
                  f"(true {figures[1]:4.0f})  Jaccard {100 * len(p) / (figures[3] - len(p)):.2f}  "
                  f"RMSE {np.sqrt(error.mean()):.2f} nm", flush=True)
    print("\nsummed over the stacks:")
    for (gate, loglik, wider), (n, true, matches, both, squared) in totals.items():
        print(f"gate {gate:>4}  2ΔlogL ≥ {loglik:>5}, {wider:>5}: splits {n:5.0f}, false {n - true:4.0f}  "
              f"Jaccard {100 * matches / (both - matches):.2f}  RMSE {np.sqrt(squared / matches):.2f} nm")


if __name__ == "__main__":
    main()
