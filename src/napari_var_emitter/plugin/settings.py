"""Widget settings kept between sessions (JSON in io.camera_profile.config_dir()), with Restore
Defaults; and titled sections for the dock widgets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from magicgui.widgets import Container, PushButton
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QGroupBox, QToolButton, QVBoxLayout, QWidget

from ..io.atomic import write_text_atomic
from ..io.camera_profile import config_dir


class Settings:
    """Values of named magicgui widgets, restored on creation and saved on every change."""

    def __init__(self, name: str, widgets: dict[str, Any]) -> None:
        self.path = config_dir() / f"{name}.json"
        self.widgets = widgets
        self.defaults = {key: _plain(widget.value) for key, widget in widgets.items()}
        self._restoring = False
        self._apply(self.read())
        for widget in widgets.values():
            widget.changed.connect(self.save)

    def read(self) -> dict[str, Any]:
        """What was saved (nothing if the file is missing or unreadable)."""
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return saved if isinstance(saved, dict) else {}

    def save(self, *_) -> None:
        if self._restoring:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.path, json.dumps({k: _plain(w.value) for k, w in self.widgets.items()}, indent=2))

    def restore_defaults(self) -> None:
        self._apply(self.defaults)
        self.save()

    def _apply(self, values: dict[str, Any]) -> None:
        """Set each known widget to its value; a value a widget refuses (a removed choice) is skipped."""
        self._restoring = True
        try:
            for key, value in values.items():
                if key in self.widgets:
                    try:
                        self.widgets[key].value = value
                    except (ValueError, TypeError):
                        continue
        finally:
            self._restoring = False


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def restore_button(*settings) -> PushButton:
    """A Restore Defaults button for these Settings (and anything with restore_defaults())."""
    button = PushButton(text="Restore defaults", tooltip="Set every field of this widget back to its default")
    button.changed.connect(lambda: [s.restore_defaults() for s in settings])
    return button


def add_sections(widget: Container, sections: dict[str, list]) -> None:
    """Put each list of magicgui widgets (and Qt widgets such as plot canvases) in a box under a
    title (its key) that folds it away when clicked, in order, into `widget` (a
    dock.ScrollingDock made with no widgets). Boxes grow with their contents (status lines,
    tables)."""
    layout = widget.body.layout()
    for title, members in sections.items():
        box, content = QGroupBox(), QWidget()
        header = QToolButton(text=title, checkable=True, checked=True, autoRaise=True,
                             toolTip=f"Click to fold or unfold {title}")
        header.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        header.setArrowType(Qt.ArrowType.DownArrow)
        header.toggled.connect(content.setVisible)
        header.toggled.connect(lambda unfolded, header=header: header.setArrowType(
            Qt.ArrowType.DownArrow if unfolded else Qt.ArrowType.RightArrow))
        outer = QVBoxLayout(box)
        outer.setContentsMargins(4, 2, 4, 4)
        outer.addWidget(header)
        outer.addWidget(content)
        box_layout = QVBoxLayout(content)
        box_layout.setContentsMargins(0, 0, 0, 0)
        run: list = []  # consecutive magicgui widgets, laid out as one form
        for member in [*members, None]:
            if member is not None and not isinstance(member, QWidget):
                run.append(member)
                continue
            if run:
                box_layout.addWidget(Container(widgets=run).native)
                run = []
            if member is not None:
                box_layout.addWidget(member)
        layout.addWidget(box)
