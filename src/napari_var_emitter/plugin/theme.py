"""napari's theme as the colours our plots are drawn in."""

from __future__ import annotations

from napari.utils.theme import get_theme

from ..analysis.plots import Colours


def theme_colours(viewer) -> Colours:
    """Background, text, highlight and secondary colours of the viewer's current theme."""
    theme = get_theme(viewer.theme)
    return Colours(background=theme.background.as_hex(), foreground=theme.text.as_hex(),
                   accent=theme.highlight.as_hex(), second=theme.secondary.as_hex())
