"""The models the widgets offer: the bundled one, and checkpoints opened or made this session."""

from __future__ import annotations

from pathlib import Path

from psygnal import Signal

from ..model.checkpoint import BUNDLED


class ModelList:
    """Weights paths, bundled first; `changed` fires when one is added."""

    changed = Signal()

    def __init__(self) -> None:
        self.paths: list[Path] = [BUNDLED]

    def add(self, path: str | Path) -> Path:
        path = Path(path).resolve()
        if path not in self.paths:
            self.paths.append(path)
            self.changed.emit()
        return path

    def choices(self, _widget=None) -> list[tuple[str, Path]]:
        return [("bundled model" if p == BUNDLED else f"{p.parent.name}/{p.name}", p) for p in self.paths]


MODELS = ModelList()
