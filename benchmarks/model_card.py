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
    card, sim = meta["card"], meta["card"]["train_config"]["simulation"]
    training = card["training"]
    print(f"- file: `{weights.name}` ({weights.stat().st_size / 1e6:.1f} MB) + `{card_path(weights).name}`")
    print(f"- architecture: {json.dumps(meta['config'])}")
    loop = card["train_config"]["training"]
    print(f"- training: {_stage(training)}, batch {loop['batch_size']} tiles of {loop['tile_px']} px, "
          f"peak lr {loop['lr']}")
    if "init" in card:
        print(f"- started from `{card['init']['weights']}`, trained with {_stage(card['init']['training'])}")
    print(f"- simulated training data, drawn per batch: pixel {sim['pixel_size_nm']} nm, "
          f"PSF σ {sim['psf_sigma_nm']} nm, mean photons {sim['photons_mean']}, "
          f"background {sim['background_photons']} photons/px, density {sim['density_per_um2']} /µm², "
          f"EMCCD (gain 100) in {sim['emccd_fraction']:.0%} of batches, else sCMOS")
    for name, row in card.get("heldout_benchmark", {}).items():
        if isinstance(row, dict):
            print(f"- held-out {name}: " + ", ".join(f"{k} {v}" for k, v in row.items()))


def _stage(training: dict) -> str:
    return (f"{training['tokenizer_steps']} tokenizer steps + {training['steps']} steps, "
            f"{training['wall_s'] / 60:.0f} min on {training['device']}, commit {training['commit']}")


if __name__ == "__main__":
    main()
