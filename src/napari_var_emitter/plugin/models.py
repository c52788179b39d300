"""The models the widgets offer: the bundled one, the bundled fast one, and checkpoints opened or
made this session, a fine-tuned one named by the stack it was fine-tuned on."""

from __future__ import annotations

from pathlib import Path

from psygnal import Signal

from ..errors import InputError
from ..model.checkpoint import BUNDLED, BUNDLED_FAST, read_card

BUNDLED_NAMES = {BUNDLED: "bundled model", BUNDLED_FAST: "fast model (U-Net, CPU-trained)"}


class ModelList:
    """Weights paths, the bundled ones first, and their names; `changed` fires when one is added."""

    changed = Signal()

    def __init__(self) -> None:
        self.names: dict[Path, str] = dict(BUNDLED_NAMES)

    @property
    def paths(self) -> list[Path]:
        return list(self.names)

    def add(self, path: str | Path) -> Path:
        path = Path(path).resolve()
        if path not in self.names:
            self.names[path] = model_name(path)
            self.changed.emit()
        return path

    def choices(self, _widget=None) -> list[tuple[str, Path]]:
        return [(name, path) for path, name in self.names.items()]

    def offer_in(self, combo) -> None:
        """Keep a magicgui ComboBox's choices up to date, until its Qt widget is gone (a closed
        dock: a model added later must not reach it)."""
        self.changed.connect(combo.reset_choices)
        combo.native.destroyed.connect(lambda *_: self.changed.disconnect(combo.reset_choices, missing_ok=True))


def model_name(path: Path) -> str:
    """'folder/file', and for a fine-tuned model the stack its card says it was fine-tuned on."""
    where = f"{path.parent.name}/{path.name}"
    try:
        stack = read_card(path)[1].get("fine_tuned_on", {}).get("stack")
    except InputError:
        return where
    return f"fine-tuned on {stack} ({where})" if stack else where


MODELS = ModelList()
