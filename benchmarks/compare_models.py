"""Two models on other groups' stacks (../shared/data/external; validation only), judged as the
bundled model is replaced (docs/model.md, "Which model is bundled"): per set, each model's
Jaccard, its lateral RMSE over every match, and its lateral RMSE over the true emitters that
**both** models match. The last compares positions on the same emitters: a model that finds
more of the hard ones (crowded, dim) is not charged for them in that column.

Run: .venv/bin/python benchmarks/compare_models.py --candidate PATH [--bundled PATH]
     [--sets NAME ...] [--frames N]
Prints one row per set and model and a verdict per set, with the interval that resampling the
emitters both find gives their RMSE difference; asserts nothing.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import tifffile
from external import EXTERNAL, FAR_NM, SETS

from napari_var_emitter.evaluate.matching import match_frames
from napari_var_emitter.predict import PredictOptions, predict


def errors_by_truth(table: pd.DataFrame, truth: pd.DataFrame, axial_tolerance_nm: float | None = None) -> pd.DataFrame:
    """x, y (and z, with an axial tolerance) error (nm) of each matched row of `table`, indexed by its
    true emitter's row (matching within FAR_NM laterally, and axial_tolerance_nm in z where given)."""
    p, t = match_frames(table, truth, FAR_NM, axial_tolerance_nm)
    axes = "xy" if axial_tolerance_nm is None else "xyz"
    return pd.DataFrame({a: table[f"{a}_nm"].to_numpy()[p] - truth[f"{a}_nm"].to_numpy()[t] for a in axes}, index=t)


def matched_errors_nm(table: pd.DataFrame, truth: pd.DataFrame) -> pd.Series:
    """Lateral error (nm) of each matched prediction, indexed by its true emitter's row."""
    errors = errors_by_truth(table, truth)
    return np.hypot(errors["x"], errors["y"])


def rmse(errors: np.ndarray) -> float:
    return float(np.sqrt(np.mean(errors**2))) if len(errors) else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidate", required=True, help="weights of the candidate model")
    parser.add_argument("--bundled", help="weights to compare against (default: the bundled 2-D model)")
    parser.add_argument("--sets", nargs="+", choices=[s.name for s in SETS], default=[s.name for s in SETS])
    parser.add_argument("--frames", type=int, help="at most this many frames per set")
    args = parser.parse_args()
    models = {"bundled": args.bundled, "candidate": args.candidate}
    print(f"{'set':<24} {'model':<10} {'Jaccard':>7} {'RMSE all':>9} {'RMSE both':>10} {'both':>6}")
    for set_ in (s for s in SETS if s.name in args.sets):
        frames = tifffile.imread(EXTERNAL / set_.stack)[:args.frames]
        truth = set_.read_truth(pd.read_csv(EXTERNAL / set_.truth))
        truth = truth[truth["frame"] < len(frames)].reset_index(drop=True)
        errors = {}
        for name, weights in models.items():
            table = predict(frames, set_.camera, PredictOptions(model=weights)).table
            errors[name] = matched_errors_nm(table, truth)
            errors[name + " n_pred"] = len(table)
        both = errors["bundled"].index.intersection(errors["candidate"].index)
        figures = {}
        for name in models:
            matched = errors[name]
            jaccard = 100 * len(matched) / (errors[name + " n_pred"] + len(truth) - len(matched))
            figures[name] = (jaccard, rmse(matched.to_numpy()), rmse(matched.loc[both].to_numpy()))
            print(f"{set_.name:<24} {name:<10} {jaccard:7.2f} {figures[name][1]:9.2f} {figures[name][2]:10.2f} "
                  f"{len(both):6d}")
        (j_old, _, r_old), (j_new, _, r_new) = figures["bundled"], figures["candidate"]
        verdict = "candidate ahead" if j_new >= j_old and r_new <= r_old else "candidate not ahead"
        low, high = rmse_difference_interval(errors["bundled"].loc[both].to_numpy(),
                                             errors["candidate"].loc[both].to_numpy())
        print(f"{set_.name:<24} {verdict} (Jaccard {j_new - j_old:+.2f} points, RMSE over both "
              f"{r_new - r_old:+.2f} nm, 95 % of resamples {low:+.2f} to {high:+.2f})", flush=True)


def rmse_difference_interval(before: np.ndarray, after: np.ndarray, draws: int = 2000) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles (nm) of rmse(after) - rmse(before) over `draws` resamples, with
    replacement, of the emitters both errors (N,) are of (seeded: the same figures every run). It says
    how much of a difference over the emitters both find the set's size alone allows; the bundling
    rule (docs/model.md) asks for no difference above 0, not for this."""
    picks = np.random.default_rng(0).integers(0, len(before), (draws, len(before)))
    differences = np.sqrt(np.mean(after[picks] ** 2, axis=1)) - np.sqrt(np.mean(before[picks] ** 2, axis=1))
    return float(np.percentile(differences, 2.5)), float(np.percentile(differences, 97.5))


if __name__ == "__main__":
    main()
