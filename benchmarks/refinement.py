"""The maximum-likelihood refinement after the network (fit/refine.py), on our own simulated
stacks: network alone against network + refinement, same detections.

Per stack: Jaccard, lateral RMSE and RMSE / CRLB over every match; the same over isolated
emitters (no other true emitter within 1 µm in their frame, at least 500 nm from the edge);
the spread of (error / stated uncertainty) per axis over matches (1 when the uncertainties
hold); the share of rows the fit replaced; predict time with and without the stage.

With --independent-frames, every frame of a stack is simulated on its own (other emitters in
each, as in the NAIRR and storm-analysis challenge data, whose frames are drawn apart): what a
model that looks at the frames beside each frame does where they tell it nothing. --photons and
--background set the stacks' brightness (2,000 photons on 50 photons/px by default; DNA-PAINT's
spots are 5-10 times brighter).

Seeds: --seed-base 12000000 is the validation range the stage's constants were chosen on;
the default 12500000 is held out (no decision has looked at it).

With --speed instead: the stage's share of predict time on whole frames of 160x160 and
256x256 at 1 emitter/µm² (--frames, 20 by default: over 20 frames one refinement batch holds
them all and runs after the network, over longer runs beside it; the PSF sigma estimated once
beforehand, as a run does, and that estimate's own time): three runs with the stage and three
of the network alone, alternating; the time the stage adds (the means' difference) over the run's, and the seconds
its thread spent in it (beside the network's next batches: predict_frames runs them at once).

Run: .venv/bin/python benchmarks/refinement.py [--densities 0.1 0.5 1 2] [--size 128] [--frames 20]
     [--seed-base N] [--model PATH] [--emccd] [--independent-frames] [--photons N] [--background B] [--speed]
Prints one row per stack and method; asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import pandas as pd

from external import FAR_NM, precision_figures

import napari_var_emitter.predict.frames as frames_module
from napari_var_emitter.evaluate.crlb import crlb_nm
from napari_var_emitter.evaluate.matching import match_frames
from napari_var_emitter.fit.refine import refine_table
from napari_var_emitter.io.camera import Camera
from napari_var_emitter.predict import PredictOptions, predict
from napari_var_emitter.predict.frames import with_psf_sigma
from napari_var_emitter.predict.model_cache import cached_model
from napari_var_emitter.simulate.config import SimulationConfig
from napari_var_emitter.simulate.stack import simulate_independent_frames, simulate_stack

def score(table: pd.DataFrame, truth: pd.DataFrame, camera: Camera, sigma_nm: float, field_nm) -> dict:
    """Jaccard, RMSE / CRLB over every match, and external.precision_figures."""
    p, t = match_frames(table, truth, FAR_NM)
    jaccard = 100 * len(p) / (len(table) + len(truth) - len(p))
    dx = table["x_nm"].to_numpy()[p] - truth["x_nm"].to_numpy()[t]
    dy = table["y_nm"].to_numpy()[p] - truth["y_nm"].to_numpy()[t]
    bound = crlb_nm(truth["photons"].to_numpy()[t], truth["background"].to_numpy()[t], sigma_nm,
                    camera.pixel_size_nm, camera.excess_noise_factor)
    out = {"jaccard": jaccard, "rmse_nm": float(np.sqrt(np.mean(dx ** 2 + dy ** 2))),
           "rmse/crlb": float(np.sqrt(np.mean(dx ** 2 + dy ** 2) / np.mean(2 * bound ** 2))),
           **precision_figures(table, truth, camera, sigma_nm, field_nm)}
    if "fitted" in table:
        out["fitted"] = float((table["fitted"] > 0).mean())  # the share of rows a fit replaced or added
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--densities", type=float, nargs="+", default=[0.1, 0.5, 1.0, 2.0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--seed-base", type=int, default=12_500_000)
    parser.add_argument("--model")
    parser.add_argument("--emccd", action="store_true", help="an EMCCD camera (EM gain 100) instead of sCMOS")
    parser.add_argument("--photons", type=float, default=2000.0, help="mean photons per emitter per frame")
    parser.add_argument("--background", type=float, default=50.0, help="background, photons/px/frame")
    parser.add_argument("--independent-frames", action="store_true", help="every frame simulated on its own")
    parser.add_argument("--speed", action="store_true", help="the stage's share of predict time (module docstring)")
    args = parser.parse_args()
    camera = (Camera(e_per_adu=10.0, em_gain=100.0, read_noise_e=50.0, type="EMCCD") if args.emccd
              else Camera(e_per_adu=0.5, read_noise_e=1.5))
    if args.speed:
        speed(camera, args.model, args.seed_base, args.frames, args.photons, args.background)
        return
    for k, density in enumerate(args.densities):
        config = SimulationConfig(frame_size=(args.size, args.size), n_frames=args.frames, density_per_um2=density,
                                  photons_mean=args.photons, background_photons=args.background, camera=camera)
        rng = np.random.default_rng(args.seed_base + k)
        frames, truth = (simulate_independent_frames(config, rng)[:2] if args.independent_frames
                         else simulate_stack(config, rng))
        emitters = truth.emitters
        times = {}
        for name, refine in (("network", False), ("network + MLE", True)):
            start = time.perf_counter()
            result = predict(frames, camera, PredictOptions(model=args.model, refine=refine))
            times[name] = time.perf_counter() - start
            s = score(result.table, emitters, camera, config.psf.sigma_nm, (args.size * camera.pixel_size_nm,) * 2)
            row = "  ".join(f"{key} {value:.3f}" if isinstance(value, float) else f"{key} {value}"
                            for key, value in s.items())
            print(f"density {density:g}/µm² {args.size}² x {args.frames} [{name:>13}] {row}  time {times[name]:.1f} s",
                  flush=True)
        share = 1 - times["network"] / times["network + MLE"]
        print(f"  the refinement's share of predict time (the PSF sigma estimated from the data): {100 * share:.0f} %",
              flush=True)


def speed(camera: Camera, model_path: str | None, seed: int, n_frames: int, photons: float, background: float) -> None:
    model = cached_model(PredictOptions(model=model_path).weights)[0]
    in_stage = []  # seconds inside the refinement, per call

    def timed_refine(*args, **kwargs):
        start = time.perf_counter()
        try:
            return refine_table(*args, **kwargs)
        finally:
            in_stage.append(time.perf_counter() - start)

    frames_module.refine_table = timed_refine
    for size in (160, 256):
        config = SimulationConfig(frame_size=(size, size), n_frames=n_frames, density_per_um2=1.0,
                                  photons_mean=photons, background_photons=background, camera=camera)
        frames, _ = simulate_stack(config, np.random.default_rng(seed + size))
        start = time.perf_counter()
        options, said = with_psf_sigma(PredictOptions(model=model_path), model, frames, camera)
        estimate_s = time.perf_counter() - start
        network, whole, stage = [], [], []
        for _ in range(3):
            start = time.perf_counter()
            predict(frames, camera, dataclasses.replace(options, refine=False))
            network.append(time.perf_counter() - start)
            in_stage.clear()
            start = time.perf_counter()
            predict(frames, camera, options)
            whole.append(time.perf_counter() - start)
            stage.append(sum(in_stage))
        busy = ", ".join(f"{100 * s / w:.0f}" for s, w in zip(stage, whole))
        added = np.mean(whole) - np.mean(network)
        print(f"{size}x{size}, {n_frames} frames, 1 /µm²: "
              f"with the refinement {', '.join(f'{t:.2f}' for t in whole)} s, "
              f"the network alone {', '.join(f'{t:.2f}' for t in network)} s: the stage adds {added:.2f} s, "
              f"{100 * added / np.mean(whole):.0f} % of the run; its thread busy {', '.join(f'{t:.2f}' for t in stage)}"
              f" s ({busy} % of each run, beside the network); estimating the PSF sigma once: {estimate_s:.2f} s "
              f"({said})", flush=True)


if __name__ == "__main__":
    main()
