"""The models the widgets offer: the bundled one, the bundled fast one, and checkpoints opened or
made this session."""

from __future__ import annotations

from pathlib import Path

from psygnal import Signal

from ..model.checkpoint import BUNDLED, BUNDLED_FAST

BUNDLED_NAMES = {BUNDLED: "bundled model", BUNDLED_FAST: "fast model (U-Net, CPU-trained)"}


class ModelList:
    """Weights paths, the bundled ones first; `changed` fires when one is added."""

    changed = Signal()

    def __init__(self) -> None:
        self.paths: list[Path] = list(BUNDLED_NAMES)

    def add(self, path: str | Path) -> Path:
        path = Path(path).resolve()
        if path not in self.paths:
            self.paths.append(path)
            self.changed.emit()
        return path

    def choices(self, _widget=None) -> list[tuple[str, Path]]:
        return [(BUNDLED_NAMES.get(p, f"{p.parent.name}/{p.name}"), p) for p in self.paths]

    def offer_in(self, combo) -> None:
        """Keep a magicgui ComboBox's choices up to date, until its Qt widget is gone (a closed
        dock: a model added later must not reach it)."""
        self.changed.connect(combo.reset_choices)
        combo.native.destroyed.connect(lambda *_: self.changed.disconnect(combo.reset_choices, missing_ok=True))


MODELS = ModelList()
