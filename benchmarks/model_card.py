"""Print the bundled model's card (its JSON beside the weights) as Markdown for docs/model.md.

Run: .venv/bin/python benchmarks/model_card.py [WEIGHTS]
"""

import json
import sys
from pathlib import Path

from napari_var_emitter.model.checkpoint import BUNDLED, card_path


def main() -> None:
    weights = Path(sys.argv[1]) if len(sys.argv) > 1 else BUNDLED
    meta = json.loads(card_path(weights).read_text())
    card = meta["card"]
    print(f"- file: `{weights.name}` ({weights.stat().st_size / 1e6:.1f} MB) + `{card_path(weights).name}`")
    print(f"- architecture: {json.dumps(meta['config'])}")
    stage, label = card, "training"
    while stage:  # this model's training, then the stages it started from
        config = stage.get("train_config", {})
        loop, sim = config.get("training"), config.get("simulation")
        print(f"- {label}: {_stage(stage['training'])}"
              + (f", batch {loop['batch_size']} tiles of {loop['tile_px']} px, peak lr {loop['lr']}" if loop else ""))
        if sim:
            # every range as the card states it (train.config.SimulationRanges: units in the names),
            # but not the σ that training ignored: σ in nm where σ was drawn in pixels
            # (psf_sigma_px), and any σ where every emitter went through an astigmatic calibration
            unused = {"psf_sigma_nm"} if sim.get("psf_sigma_px") else set()
            if sim.get("psf_family") or sim.get("psf_calibration"):
                unused |= {"psf_sigma_nm", "psf_sigma_px"}
            print("  - simulated data, drawn per group of frames: "
                  + ", ".join(f"{key} {value}" for key, value in sim.items()
                              if value not in (None, [], ()) and key not in unused))
        stage, label = stage.get("init"), f"started from `{stage.get('init', {}).get('weights')}`"
    for name, row in card.get("heldout_benchmark", {}).items():
        if isinstance(row, dict):
            print(f"- held-out {name}: " + ", ".join(f"{k} {v}" for k, v in row.items()))
    if card.get("heldout") and not card.get("heldout_benchmark"):  # the training run's own held-out log
        print("- held-out log of the training run: " + ", ".join(f"{k} {v:.1f}" for k, v in card["heldout"].items()))


def _stage(training: dict) -> str:
    of = f" of the run's {training['run_steps']} (a checkpoint of a run in progress)" if "run_steps" in training else ""
    return (f"{training['tokenizer_steps']} tokenizer steps + {training['steps']} steps{of}, "
            f"{training['wall_s'] / 60:.0f} min on {training['device']}, commit {training['commit']}")


if __name__ == "__main__":
    main()
