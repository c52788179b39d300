"""Model files: weights in safetensors (never unpickled) + a JSON card beside them.

MODEL.safetensors holds the weights; MODEL.json holds {"format", "format_version",
"config": ModelConfig, "card": free-form facts (training, data ranges, results)}.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from ..config_tree import build_dataclass
from ..errors import InputError
from ..io.atomic import atomic_path, write_text_atomic
from .config import ModelConfig
from .predictor import VAREmitterPredictor

FORMAT = "napari-var-emitter/model"
FORMAT_VERSION = 1
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
BUNDLED = WEIGHTS_DIR / "var_emitter.safetensors"  # the 2-D model
BUNDLED_3D = WEIGHTS_DIR / "var_emitter_3d.safetensors"  # astigmatic 3-D, conditioned on the PSF calibration
# the fast 2-D model, a choice beside the bundled one (a CPU-trained U-Net: docs/model.md), and its name in --model
BUNDLED_FAST, FAST = WEIGHTS_DIR / "var_emitter_fast.safetensors", "fast"


def card_path(weights: Path) -> Path:
    return Path(weights).with_suffix(".json")


def save_model(weights: str | Path, model: VAREmitterPredictor, card: dict[str, Any]) -> None:
    """Write weights and card atomically."""
    weights = Path(weights)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(weights) as tmp:
        safetensors.torch.save_file(state, str(tmp))
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": model.config.to_dict(),
            "card": card}
    write_text_atomic(card_path(weights), json.dumps(meta, indent=2))


def resolve_device(name: str) -> str:
    """"auto" -> cuda when available, else cpu; "cuda" without a GPU is an InputError."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name != "cpu" and not name.startswith("cuda"):
        raise InputError(f"device must be auto, cpu or cuda, got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("device cuda: no CUDA device is available (use cpu or auto)")
    return name


def read_card(weights: str | Path) -> tuple[ModelConfig, dict]:
    """A model's architecture and card, from the JSON beside its weights (the weights are not
    read). Every problem is an InputError."""
    weights = Path(weights)
    meta_path = card_path(weights)
    if not weights.is_file() or not meta_path.is_file():
        raise InputError(f"{weights}: model needs both {weights.name} and {meta_path.name}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{meta_path}: not a model card ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise InputError(f"{meta_path}: not a napari-var-emitter model card (format {found!r})")
    version = meta.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise InputError(f"{meta_path}: format_version must be a whole number, got {version!r}")
    if version > FORMAT_VERSION:
        raise InputError(f"{meta_path}: model format {version} is newer than this program")
    if "config" not in meta:
        raise InputError(f"{meta_path}: the card has no \"config\" (the model's architecture)")
    if not isinstance(meta.get("card", {}), dict):
        raise InputError(f"{meta_path}: \"card\" must be a mapping, got {meta['card']!r}")
    try:
        config = build_dataclass(ModelConfig, meta["config"])
    except InputError as exc:
        raise InputError(f"{meta_path}: {exc}") from exc
    return config, meta.get("card", {})


def _misfits(expected: dict, found: dict) -> str:
    """How the tensors `found` in a file differ from those an architecture `expected`, in a few
    words with one example of each kind; empty when they fit."""
    missing = [name for name in expected if name not in found]
    extra = [name for name in found if name not in expected]
    reshaped = [name for name in expected if name in found and found[name].shape != expected[name].shape]
    words = [f"{len(missing)} missing (e.g. {missing[0]})"] if missing else []
    words += [f"{len(extra)} not in it (e.g. {extra[0]})"] if extra else []
    if reshaped:
        name = reshaped[0]
        words.append(f"{len(reshaped)} of another shape (e.g. {name}: {tuple(found[name].shape)} in the file, "
                     f"{tuple(expected[name].shape)} in the architecture)")
    return "; ".join(words)


def load_model(weights: str | Path | None = None, device: str = "cpu") -> tuple[VAREmitterPredictor, dict]:
    """Load a model (the bundled one when `weights` is None). Every problem is an InputError."""
    weights = Path(weights) if weights is not None else BUNDLED
    meta_path = card_path(weights)
    config, card = read_card(weights)
    model = VAREmitterPredictor(config)
    try:
        state = safetensors.torch.load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise InputError(f"{weights}: damaged or not a safetensors file ({exc})") from exc
    misfits = _misfits(model.state_dict(), state)
    if misfits:
        raise InputError(f"{weights}: weights do not fit the architecture in {meta_path.name} ({misfits}); a "
                         "model is its .safetensors with the .json its training wrote beside it")
    model.load_state_dict(state, strict=True)
    broken = [name for name, tensor in state.items() if tensor.is_floating_point() and not tensor.isfinite().all()]
    if broken:
        raise InputError(f"{weights}: {len(broken)} weight tensor(s) hold NaN or inf (e.g. {broken[0]}): the file "
                         "comes from a training run that diverged; use another checkpoint")
    model.card = card
    return model.to(device).eval(), card


def load_training_state(path: Path) -> dict[str, Any]:
    """Optimizer/step state for resuming (torch.load with weights_only=True)."""
    return torch.load(path, map_location="cpu", weights_only=True)
