"""Held-out accuracy of a model at the acceptance conditions (docs/benchmarks.md).

For each condition, simulate 160x160 frames (PSF sigma 130 nm, 100 nm pixels, sCMOS) from a
seed that training never uses, predict, and score with the project's own evaluation: all
emitters, and emitters above 1,000 photons. Also: the tokenizer ceiling (true tokens decoded
and localised; also with local maxima only, the head's decoding), per-scale map calibration,
the ablation without the VAR prior, and the classical reference localiser on the same frames.

Run: .venv/bin/python benchmarks/accuracy.py [--model PATH] [--frames N] [--json OUT.json]
"""

import argparse
import dataclasses
import json
import time
from pathlib import Path


from napari_var_emitter.classical.localize import localize_stack
from napari_var_emitter.evaluate.calibration import calibration, occupancy_grid
from napari_var_emitter.evaluate.metrics import evaluate
from napari_var_emitter.io.atomic import write_text_atomic
from napari_var_emitter.model.checkpoint import BUNDLED, card_path, load_model
from napari_var_emitter.predict import PredictOptions, predict_frames
from napari_var_emitter.train.heldout import heldout_stacks, tokenizer_ceiling

BENCH_SEED = 9_000_000  # training uses small seeds, its held-out checks 7,000,000+


def run(model_path, n_frames: int) -> dict:
    model, _ = load_model(model_path)
    results = {"model": str(model_path or "bundled"), "frames_per_condition": n_frames, "conditions": {}}
    for name, frames, truth in heldout_stacks(n_frames, frame_px=160, seed=BENCH_SEED):
        camera = truth.camera
        started = time.perf_counter()
        prediction = predict_frames(model, frames, camera)
        fps = n_frames / (time.perf_counter() - started)
        row = {
            "all": evaluate(prediction.table, truth),
            "above_1000_photons": evaluate(prediction.table, truth, min_photons=1000.0),
            "classical_reference": evaluate(localize_stack(frames, camera, 130.0), truth),
            "frames_per_s": fps,
        }
        results["conditions"][name] = row
        if not model.config.var_prior:  # the no-VAR baseline: no prior, tokens or per-scale maps
            continue
        row["no_var_prior"] = evaluate(predict_frames(model, frames, camera, PredictOptions(prior_scale=0.0)).table,
                                       truth)
        first = [(name, frames[:20], _first_frames(truth, 20))]
        row["tokenizer"] = tokenizer_ceiling(model, first)
        row["tokenizer_local_maxima"] = tokenizer_ceiling(model, first, occupied=None)
        row["strides_px"] = list(prediction.strides_px)
        row["calibration"] = [
            calibration(m, occupancy_grid(truth.emitters, n_frames, m.shape[1:], s * camera.pixel_size_nm))
            for m, s in zip(prediction.scale_maps, prediction.strides_px)
        ]
    return results


def _first_frames(truth, n):
    return dataclasses.replace(truth, emitters=truth.emitters[truth.emitters["frame"] < n].reset_index(drop=True),
                               n_frames=n)


def markdown(results: dict) -> str:
    lines = ["| condition | set | Jaccard % | recall | precision | RMSE lat nm | RMSE/CRLB | efficiency "
             "| bias x/y nm |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, row in results["conditions"].items():
        for label in ("all", "above_1000_photons", "no_var_prior", "classical_reference"):
            if label not in row:
                continue
            r = row[label]
            lines.append(f"| {name} | {label} | {r['jaccard']:.1f} | {r['recall']:.3f} | {r['precision']:.3f} | "
                         f"{r['rmse_lateral_nm']:.1f} | {r['rmse_over_crlb']:.2f} | {r['efficiency_lateral']:.1f} | "
                         f"{r['bias_x_nm']:.1f}/{r['bias_y_nm']:.1f} |")
    lines += ["", "| condition | tokenizer ceiling Jaccard % | ... local maxima only | codebook utilisation "
              "| perplexity | frames/s |", "|---|---|---|---|---|---|"]
    for name, row in results["conditions"].items():
        if "tokenizer" not in row:
            lines.append(f"| {name} | – | – | – | – | {row['frames_per_s']:.2f} |")
            continue
        t, key = row["tokenizer"], f"{name}_ceiling_jaccard"
        lines.append(f"| {name} | {t[key]:.1f} | {row['tokenizer_local_maxima'][key]:.1f} | "
                     f"{t['codebook_utilisation']:.3f} | {t['codebook_perplexity']:.0f} | {row['frames_per_s']:.2f} |")
    lines += ["", "| condition | scale (stride px) | Brier | Brier of base rate | ECE | occupied fraction |",
              "|---|---|---|---|---|---|"]
    for name, row in results["conditions"].items():
        for stride, c in zip(row.get("strides_px", ()), row.get("calibration", ())):
            lines.append(f"| {name} | {stride} | {c['brier']:.4f} | {c['brier_base_rate']:.4f} | {c['ece']:.4f} | "
                         f"{c['occupied_fraction']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="weights (.safetensors); default: bundled")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--json", help="also write the full results here")
    parser.add_argument("--card", action="store_true", help="record a summary in the model's JSON card")
    args = parser.parse_args()
    results = run(args.model, args.frames)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if args.card:
        record_in_card(Path(args.model) if args.model else BUNDLED, results)
    print(markdown(results))


def record_in_card(weights: Path, results: dict) -> None:
    """Add {condition: Jaccard, RMSE, RMSE/CRLB, efficiency, ceiling} to the model card."""
    meta = json.loads(card_path(weights).read_text())
    summary = {"command": "benchmarks/accuracy.py", "frames_per_condition": results["frames_per_condition"]}
    for name, row in results["conditions"].items():
        summary[name] = {f"{subset}_{metric}": round(row[subset][metric], 3)
                         for subset in ("all", "above_1000_photons")
                         for metric in ("jaccard", "rmse_lateral_nm", "rmse_over_crlb", "efficiency_lateral")}
        summary[name]["tokenizer_ceiling_jaccard"] = round(row["tokenizer"][f"{name}_ceiling_jaccard"], 3)
    meta["card"]["heldout_benchmark"] = summary
    write_text_atomic(card_path(weights), json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
