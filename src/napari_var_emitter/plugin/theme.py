"""napari's theme as the colours our plots are drawn in."""

from __future__ import annotations

from napari.utils.theme import get_theme

from ..analysis.plots import Colours


def theme_colours(viewer) -> Colours:
    """The viewer's current theme: its background and text, and for data its two colours that
    stand apart from the background and from each other (warning amber, current-item blue; the
    theme's highlight and secondary are greys too close to its background to tell two curves apart)."""
    theme = get_theme(viewer.theme)
    return Colours(background=theme.background.as_hex(), foreground=theme.text.as_hex(),
                   accent=theme.warning.as_hex(), second=theme.current.as_hex())
