"""napari's choice of reader and writer for our formats: TIFF stacks open with our reader without
napari asking which reader to use each time, and Points layers save as our ThunderSTORM CSV
(nm, 1-based frames) before napari's builtin CSV (pixels, 0-based frames)."""

from __future__ import annotations

PLUGIN_NAME = "napari-var-emitter"
TIFF_PATTERNS = ("*.tif", "*.tiff")


def activate(_context) -> None:
    """npe2's on_activate (the manifest): prefer_ours() as soon as any of our contributions is
    used (and again whenever our reader opens a TIFF, should the preference have been reset)."""
    prefer_ours()


def prefer_ours() -> None:
    """Our reader for TIFF files, unless the user chose one for them (napari's reader preference,
    Preferences › Plugins, as its "remember" box sets it); and our CSV writer first for Points
    layers. npe2 has no public writer preference (napari's extension2writer setting is not read
    when saving), so that reorders its registry; should that change, the builtin comes first
    again and the test of the save dialog's choices says so."""
    from napari.settings import get_settings
    from npe2 import PluginManager

    plugins = get_settings().plugins
    unset = [pattern for pattern in TIFF_PATTERNS if pattern not in plugins.extension2reader]
    if unset:
        plugins.extension2reader = {**plugins.extension2reader, **dict.fromkeys(unset, PLUGIN_NAME)}
    writers = getattr(getattr(PluginManager.instance(), "_contrib", None), "_writers", None)
    if isinstance(writers, list):
        ours = [entry for entry in writers if entry[-1].command.startswith(f"{PLUGIN_NAME}.")]
        writers[:] = ours + [entry for entry in writers if entry not in ours]
