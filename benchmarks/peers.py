"""Side by side: our VAR predictor, our classical reference, SMAPpy and Picasso on the same held-out
stacks, scored with our evaluation (`make bench`; needs the `[bench]` extra).

Stacks: a grid of density (emitters/µm²) x (photons per emitter, background photons/px) from our
simulator, 160x160 px, sigma 130 nm, 100 nm pixels, sCMOS, seeds 9,100,000+ (training never
uses them); and one stack from an independent simulator, SMAPpy's `simulate.camera_frames`
(blinking "demo" structure, pixel-integrated Gaussian PSF). Every method runs on the same
frames in the same process, so frames/s ratios are fair (2 CPU threads for all).

Writes benchmarks/results/peers.json, the plots docs/images/bench_*.png and the tables into
docs/benchmarks.md between the `peers` markers. `--tune` instead sweeps the peers' detection
thresholds on validation stacks (seeds 7,100,000+) to choose their one rule.

Run: .venv-bench/bin/python benchmarks/peers.py [--frames N] [--tune]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from napari_var_emitter.classical.localize import localize_stack
from napari_var_emitter.evaluate.metrics import evaluate
from napari_var_emitter.figures import plot_scale_maps
from napari_var_emitter.io.camera import Camera, frames_to_photons
from napari_var_emitter.io.emitters_h5 import GroundTruth
from napari_var_emitter.model.checkpoint import load_model
from napari_var_emitter.predict import predict_frames
from napari_var_emitter.psf import PSF
from napari_var_emitter.simulate.config import SimulationConfig
from napari_var_emitter.simulate.stack import simulate_stack
from peer_fitters import picasso_localize, smappy_localize

ROOT = Path(__file__).resolve().parent.parent
SIGMA_NM = 130.0
CAMERA = Camera(pixel_size_nm=100.0, baseline_adu=100.0, e_per_adu=0.5, read_noise_e=1.5)
DENSITIES = (0.1, 0.5, 1.0, 2.0, 3.0)
BRIGHTNESS = ((1000.0, 20.0), (1000.0, 100.0), (5000.0, 20.0), (5000.0, 100.0))  # (photons, background)
BENCH_SEED, TUNE_SEED = 9_100_000, 7_100_000
BRIGHT_PHOTONS = 1000.0  # the SMLM convention's second view: emitters at least this bright
METRICS = ("jaccard", "rmse_lateral_nm", "rmse_over_crlb", "efficiency_lateral", "bias_x_nm", "bias_y_nm")
MARKERS = ("<!-- peers:start -->", "<!-- peers:end -->")


def simulated(density, photons, background, n_frames, seed):
    config = SimulationConfig(frame_size=160, n_frames=n_frames, density_per_um2=density, photons_mean=photons,
                              background_photons=background, psf=PSF(sigma_nm=SIGMA_NM), camera=CAMERA)
    return simulate_stack(config, np.random.default_rng(seed))


def smappy_simulated(n_frames: int, seed: int):
    """(frames, GroundTruth) from SMAPpy's simulator; its positions put pixel k's centre at k."""
    from smappy.simulate.camera import camera_frames

    frames, locs = camera_frames(n_frames=n_frames, seed=seed, pixelsize_nm=CAMERA.pixel_size_nm, size_px=100,
                                 photons=3000.0, background=30.0, sigma_nm=SIGMA_NM, conversion=CAMERA.e_per_adu,
                                 offset=CAMERA.baseline_adu, read_noise=CAMERA.read_noise_e / CAMERA.e_per_adu)
    c = locs.columns
    half = CAMERA.pixel_size_nm / 2
    emitters = pd.DataFrame({"frame": np.asarray(c["frame"], np.int64), "x_nm": np.asarray(c["x_nm"]) + half,
                             "y_nm": np.asarray(c["y_nm"]) + half, "z_nm": 0.0,
                             "photons": np.asarray(c["photons"], float),
                             "background": np.asarray(c["background"], float)})
    return frames, GroundTruth(emitters, CAMERA, PSF(sigma_nm=SIGMA_NM).to_dict(), frames.shape[1:], n_frames)


def methods(model):
    return {
        "VAR (ours)": lambda frames, camera: predict_frames(model, frames, camera).table,
        "classical (ours)": lambda frames, camera: localize_stack(frames, camera, SIGMA_NM),
        "SMAPpy": lambda frames, camera: smappy_localize(frames, camera, SIGMA_NM),
        "Picasso": lambda frames, camera: picasso_localize(frames, camera, SIGMA_NM),
    }


def score(runs, frames, truth) -> dict:
    row = {}
    for name, run in runs.items():
        started = time.perf_counter()
        table = run(frames, truth.camera)
        elapsed = time.perf_counter() - started
        report, bright = evaluate(table, truth), evaluate(table, truth, min_photons=BRIGHT_PHOTONS)
        row[name] = {**{m: report[m] for m in METRICS}, "frames_per_s": len(frames) / elapsed,
                     "above_1000_photons": {m: bright[m] for m in METRICS}}
    return row


def run(n_frames: int) -> dict:
    model, _ = load_model(None)
    runs = methods(model)
    warm, warm_truth = simulated(1.0, 2000.0, 50.0, 2, 1)  # compile numba / load everything first
    score(runs, warm, warm_truth)
    results = {"frames_per_stack": n_frames, "grid": [], "torch_threads": torch.get_num_threads()}
    for i, (density, (photons, background)) in enumerate(
            (d, b) for b in BRIGHTNESS for d in DENSITIES):
        frames, truth = simulated(density, photons, background, n_frames, BENCH_SEED + i)
        row = score(runs, frames, truth)
        results["grid"].append({"density": density, "photons": photons, "background": background, "methods": row})
        print(f"density {density}, {photons:.0f} ph, bg {background:.0f}: "
              + ", ".join(f"{k} JI {v['jaccard']:.1f}" for k, v in row.items()), flush=True)
    frames, truth = smappy_simulated(10 * n_frames, BENCH_SEED + 99)
    density = len(truth.emitters) / len(frames) / (np.prod(frames.shape[1:]) * 0.01)
    results["independent"] = {"density": density, "frames": len(frames), "methods": score(runs, frames, truth)}
    print(f"SMAPpy-simulated stack ({density:.2f}/µm²): "
          + ", ".join(f"{k} JI {v['jaccard']:.1f}" for k, v in results["independent"]["methods"].items()))
    return results


def tune() -> None:
    """Mean Jaccard of each peer threshold over validation stacks (density 0.5 and 2, both
    brightnesses): the value printed best is the one rule peer_fitters.py uses."""
    stacks = [simulated(d, p, b, 10, TUNE_SEED + i)
              for i, (d, (p, b)) in enumerate((d, b) for d in (0.5, 2.0) for b in BRIGHTNESS[::3])]
    sweeps = {"SMAPpy cutoff (photons)": (smappy_localize, "cutoff_photons", (3.0, 4.5, 6.0, 8.0, 10.0)),
              "Picasso min net gradient (e-)": (picasso_localize, "min_ng_e", (60.0, 125.0, 250.0, 500.0, 1000.0))}
    for label, (fitter, key, values) in sweeps.items():
        for value in values:
            ji = [evaluate(fitter(frames, truth.camera, SIGMA_NM, **{key: value}), truth)["jaccard"]
                  for frames, truth in stacks]
            print(f"{label} {value}: mean Jaccard {np.mean(ji):.2f} ({', '.join(f'{j:.1f}' for j in ji)})")


def markdown(results: dict) -> str:
    names = list(results["grid"][0]["methods"])
    head = "| density /µm² | photons | bg | " + " | ".join(names) + " |"
    rule = "|---|---|---|" + "---|" * len(names)
    tables = []
    for metric, fmt in (("jaccard", "{:.1f}"), ("rmse_lateral_nm", "{:.1f}"), ("rmse_over_crlb", "{:.2f}"),
                        ("efficiency_lateral", "{:.1f}"), ("frames_per_s", "{:.1f}")):
        lines = [f"**{metric}**", "", head, rule]
        for row in results["grid"]:
            cells = [fmt.format(row["methods"][n][metric]) for n in names]
            lines.append(f"| {row['density']} | {row['photons']:.0f} | {row['background']:.0f} | "
                         + " | ".join(cells) + " |")
        tables.append("\n".join(lines))
    bias = ["**bias x / y (nm), all grid stacks pooled by mean**", "", "| method | bias x | bias y |",
            "|---|---|---|"]
    for n in names:
        bx = np.nanmean([r["methods"][n]["bias_x_nm"] for r in results["grid"]])
        by = np.nanmean([r["methods"][n]["bias_y_nm"] for r in results["grid"]])
        bias.append(f"| {n} | {bx:.1f} | {by:.1f} |")
    ind = results["independent"]
    indep = [f"**SMAPpy-simulated stack** ({ind['frames']} frames of 100x100 px, {ind['density']:.2f} "
             "emitters/µm² on average; all emitters, then those above 1,000 photons)", "",
             "| method | emitters | Jaccard % | RMSE nm | RMSE/CRLB | efficiency | frames/s |",
             "|---|---|---|---|---|---|---|"]
    for n, r in ind["methods"].items():
        for label, m in (("all", r), ("≥ 1,000 ph", r["above_1000_photons"])):
            indep.append(f"| {n} | {label} | {m['jaccard']:.1f} | {m['rmse_lateral_nm']:.1f} | "
                         f"{m['rmse_over_crlb']:.2f} | {m['efficiency_lateral']:.1f} | {r['frames_per_s']:.1f} |")
    return "\n\n".join(tables + ["\n".join(bias), "\n".join(indep)])


def plots(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["grid"][0]["methods"])
    colours = dict(zip(names, ("crimson", "steelblue", "darkorchid", "darkorange")))
    grid = results["grid"]
    fig, axes = plt.subplots(1, len(BRIGHTNESS), figsize=(4 * len(BRIGHTNESS), 3.6), sharey=True)
    for ax, (photons, background) in zip(axes, BRIGHTNESS):
        rows = [r for r in grid if (r["photons"], r["background"]) == (photons, background)]
        for n in names:
            ax.plot([r["density"] for r in rows], [r["methods"][n]["jaccard"] for r in rows], "o-", c=colours[n],
                    label=n)
        ax.set_title(f"{photons:.0f} photons, bg {background:.0f}")
        ax.set_xlabel("density (emitters/µm²)")
    axes[0].set_ylabel("Jaccard (%)")
    axes[0].legend(fontsize=7)
    _save(fig, out / "bench_jaccard_vs_density.png")

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6), sharey=True)
    for ax, background in zip(axes, (20.0, 100.0)):
        for n in names:
            rows = [r for r in grid if r["density"] == DENSITIES[0] and r["background"] == background]
            ax.plot([r["photons"] for r in rows], [r["methods"][n]["rmse_over_crlb"] for r in rows], "o-",
                    c=colours[n], label=n)
        ax.axhline(1.0, c="k", lw=0.6, ls="--")
        ax.set_xscale("log")
        ax.set_title(f"density {DENSITIES[0]}/µm², bg {background:.0f}")
        ax.set_xlabel("photons per emitter")
    axes[0].set_ylabel("RMSE / CRLB")
    axes[0].legend(fontsize=7)
    _save(fig, out / "bench_rmse_crlb_vs_photons.png")

    fig, ax = plt.subplots(figsize=(8, 3.6))
    width = 0.8 / len(names)
    for i, n in enumerate(names):
        ax.bar(np.arange(len(grid)) + i * width, [max(r["methods"][n]["efficiency_lateral"], 0) for r in grid], width,
               color=colours[n], label=n)
    ax.set_xticks(np.arange(len(grid)) + 0.4,
                  [f"{r['density']}\n{r['photons'] / 1000:.0f}k/{r['background']:.0f}" for r in grid], fontsize=6)
    ax.set_ylabel("efficiency (%)")
    ax.set_xlabel("density /µm², photons / background")
    ax.legend(fontsize=7, ncol=len(names), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    _save(fig, out / "bench_efficiency.png")


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"wrote {path}")


def scale_maps_figure(out: Path) -> None:
    """One held-out frame (1/µm², 2000 photons) with each scale's probability map."""
    model, _ = load_model(None)
    frames, truth = simulated(1.0, 2000.0, 50.0, 1, BENCH_SEED + 98)
    prediction = predict_frames(model, frames, truth.camera)
    plot_scale_maps(frames_to_photons(frames, truth.camera)[0], [m[0] for m in prediction.scale_maps],
                    prediction.strides_px, CAMERA.pixel_size_nm, prediction.table, out / "bench_scale_maps.png",
                    truth=truth.emitters)


def write_docs(results: dict) -> None:
    doc = ROOT / "docs" / "benchmarks.md"
    text = doc.read_text()
    start, end = MARKERS
    block = f"{start}\n{markdown(results)}\n{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{doc} has no {start} ... {end} block to fill")
    doc.write_text(pattern.sub(lambda _: block, text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30, help="frames per grid stack")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tune", action="store_true", help="sweep the peers' thresholds on validation stacks")
    parser.add_argument("--replot", action="store_true", help="redraw plots and tables from the saved results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.tune:
        tune()
        return
    saved = ROOT / "benchmarks" / "results" / "peers.json"
    if args.replot:
        results = json.loads(saved.read_text())
    else:
        results = run(args.frames)
        saved.parent.mkdir(exist_ok=True)
        saved.write_text(json.dumps(results, indent=1))
    images = ROOT / "docs" / "images"
    import matplotlib.pyplot as plt

    with plt.style.context("default"):  # a peer sets its own matplotlib style on import
        plots(results, images)
        scale_maps_figure(images)
    write_docs(results)
    print(markdown(results))


if __name__ == "__main__":
    main()
