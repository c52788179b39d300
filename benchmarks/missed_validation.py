"""How the search for emitters the network missed (fit/missed.py) was chosen: on our own validation
stacks, the network's detections refined with the search off and with each pair of (ADD_GATE,
ADD_LOGLIK) of a grid; per setting, summed over the stacks: the emitters added, how many of them
match a true emitter (true additions; matching within 250 nm laterally, and 500 nm axially in 3-D),
Jaccard, lateral RMSE (and axial in 3-D) over every match, and the seconds inside the refinement.

Stacks: --dims 2: the split validation stacks (benchmarks/split_validation.py: sCMOS and EMCCD at
0.1 to 4 /µm², bright spots under a 15 % PSF halo the fit does not model, bright spots one pixel
wide), seeds --seed-base + 300 + i, the PSF sigma estimated from the data as a run does.
--dims 3: our astigmatic stacks (benchmarks/refinement_3d.py, NAIRR-like calibration recovered
from simulated beads) at 0.1 / 0.5 / 1 / 2 /µm², seeds --seed-base-3d + i.

Run: .venv/bin/python benchmarks/missed_validation.py [--dims 2 3] [--frames 10]
     [--gates G ...] [--logliks L ...]
Prints one row per stack and setting, then the sums; asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import time

import numpy as np

from astigmatic_3d import NAIRR_PSF, calibration_from_beads
from external import FAR_NM
from refinement_3d import AXIAL_TOLERANCE_NM
from split_validation import stacks as stacks_2d

from napari_var_emitter.evaluate.matching import match_frames
from napari_var_emitter.fit import missed
from napari_var_emitter.fit.joint import AstigmaticSpots, RoundSpots
from napari_var_emitter.fit.refine import ADDED, refine_table
from napari_var_emitter.io.camera import Camera, frames_to_photons
from napari_var_emitter.predict import PredictOptions, predict
from napari_var_emitter.predict.frames import with_psf_sigma
from napari_var_emitter.predict.model_cache import cached_model
from napari_var_emitter.simulate.config import SimulationConfig
from napari_var_emitter.simulate.stack import simulate_stack

GATES = (15.0, 25.0, 40.0)
LOGLIKS = (15.0, 25.0, 40.0, 80.0)


def validation_stacks(args):
    """(name, frames ADU, truth, camera, network table, spot model) of the chosen stacks."""
    if 2 in args.dims:
        model = cached_model(PredictOptions().weights)[0]
        for k, (name, config) in enumerate(stacks_2d(args.size, args.frames)):
            frames, truth = simulate_stack(config, np.random.default_rng(args.seed_base + 300 + k))
            options, _ = with_psf_sigma(PredictOptions(), model, frames, config.camera)
            network = predict(frames, config.camera, dataclasses.replace(options, refine=False)).table
            sigma_nm = options.psf_sigma_nm if options.refine else config.psf.sigma_nm
            yield name, frames, truth.emitters, config.camera, network, RoundSpots(sigma_nm / config.camera.pixel_size_nm)
    if 3 in args.dims:
        psf = calibration_from_beads(NAIRR_PSF, 301)
        camera = Camera(pixel_size_nm=100.0, baseline_adu=100.0, e_per_adu=0.5, read_noise_e=1.5)
        for i, density in enumerate((0.1, 0.5, 1.0, 2.0)):
            config = SimulationConfig(frame_size=(64, 64), n_frames=5 * args.frames, density_per_um2=density,
                                      photons_mean=3000.0, background_photons=50.0, psf=NAIRR_PSF, camera=camera)
            frames, truth = simulate_stack(config, np.random.default_rng(args.seed_base_3d + i))
            network = predict(frames, camera, PredictOptions(psf=psf, refine=False)).table
            yield (f"3-D {density:g}/µm²", frames, truth.emitters, camera, network,
                   AstigmaticSpots(psf, camera.pixel_size_nm))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 3], choices=[2, 3])
    parser.add_argument("--seed-base", type=int, default=12_000_000)
    parser.add_argument("--seed-base-3d", type=int, default=12_200_100)
    parser.add_argument("--frames", type=int, default=10, help="frames per 2-D stack (3-D: five times as many)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--gates", type=float, nargs="+", default=GATES)
    parser.add_argument("--logliks", type=float, nargs="+", default=LOGLIKS)
    args = parser.parse_args()
    settings = [(np.inf, np.inf)] + [(g, s) for g, s in itertools.product(args.gates, args.logliks) if g <= s]
    # per setting and kind (2-D, 3-D): added, true added, matches, tables + truths, lateral and axial squared error, s
    totals = {(s, d): np.zeros(7) for s in settings for d in args.dims}
    for name, frames, truth, camera, network, spots in validation_stacks(args):
        photons = frames_to_photons(frames, camera)
        depth = isinstance(spots, AstigmaticSpots)
        for gate, loglik in settings:
            missed.ADD_GATE, missed.ADD_LOGLIK = gate, loglik
            start = time.perf_counter()
            table = refine_table(network, photons, camera, spots)
            seconds = time.perf_counter() - start
            p, t = match_frames(table, truth, FAR_NM, AXIAL_TOLERANCE_NM if depth else None)
            new = np.flatnonzero(table["fitted"].to_numpy() == ADDED)
            lateral = ((table["x_nm"].to_numpy()[p] - truth["x_nm"].to_numpy()[t]) ** 2
                       + (table["y_nm"].to_numpy()[p] - truth["y_nm"].to_numpy()[t]) ** 2)
            axial = (table["z_nm"].to_numpy()[p] - truth["z_nm"].to_numpy()[t]) ** 2 if depth else np.zeros(1)
            figures = np.array([len(new), np.isin(new, p).sum(), len(p), len(table) + len(truth), lateral.sum(),
                                axial.sum(), seconds])
            totals[((gate, loglik), 3 if depth else 2)] += figures
            z_text = f"  axial {np.sqrt(axial.mean()):.1f} nm" if depth else ""
            print(f"{name:>40}  gate {gate:>4}  2ΔlogL ≥ {loglik:>5}: added {len(new):4d} (true {figures[1]:4.0f})  "
                  f"Jaccard {100 * len(p) / (figures[3] - len(p)):.2f}  lateral {np.sqrt(lateral.mean() / 2):.2f} nm"
                  f"{z_text}  {seconds:.1f} s", flush=True)
    print("\nsummed over the stacks:")
    for ((gate, loglik), dims), (n, true, matches, both, lateral, axial, seconds) in totals.items():
        z_text = f"  axial {np.sqrt(axial / matches):.1f} nm" if dims == 3 else ""
        print(f"{dims}-D  gate {gate:>4}  2ΔlogL ≥ {loglik:>5}: added {n:5.0f}, false {n - true:4.0f}  "
              f"Jaccard {100 * matches / (both - matches):.2f}  lateral {np.sqrt(lateral / matches / 2):.2f} nm"
              f"{z_text}  {seconds:.0f} s")


if __name__ == "__main__":
    main()
