"""Named camera profiles: a camera description saved as JSON, read by the CLI (--camera) and the
widgets (which keep theirs in `profile_dir()`).

{"format": "napari-var-emitter/camera", "format_version": 1, "name": ..., "camera": {...}}
with any subset of Camera's fields (and `adu_per_e` instead of `e_per_adu` if preferred);
calibration-map paths may be relative to the profile's folder.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import platformdirs

from ..errors import InputError
from .atomic import write_text_atomic
from .camera import MAP_FIELDS, Camera

FORMAT = "napari-var-emitter/camera"
CONFIG_ENV = "NAPARI_VAR_EMITTER_CONFIG_DIR"  # overrides where settings and profiles live


def config_dir() -> Path:
    """Where the plugin keeps its settings: $NAPARI_VAR_EMITTER_CONFIG_DIR, else the user's
    config folder (e.g. ~/.config/napari-var-emitter)."""
    return Path(os.environ.get(CONFIG_ENV) or platformdirs.user_config_dir("napari-var-emitter"))


def profile_dir() -> Path:
    return config_dir() / "cameras"


def profile_path(name: str) -> Path:
    """The file of the profile called `name` in profile_dir()."""
    if not name.strip():
        raise InputError("give the camera profile a name")
    return profile_dir() / (re.sub(r"[^\w.-]+", "_", name.strip()) + ".json")


def saved_profiles() -> dict[str, Path]:
    """Profile name -> file, for the profiles in profile_dir() (unreadable files left out)."""
    found = {}
    for path in sorted(profile_dir().glob("*.json")):
        try:
            found[json.loads(path.read_text(encoding="utf-8")).get("name", path.stem)] = path
        except (OSError, ValueError, AttributeError):
            continue
    return found


def write_camera_profile(path: str | os.PathLike, camera: Camera, name: str | None = None) -> Path:
    """Save `camera` as a profile (atomically); returns the path."""
    path = Path(path)
    document = {"format": FORMAT, "format_version": 1, "name": name or path.stem, "camera": camera.to_dict()}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(document, indent=2))
    return path


def read_camera_profile(path: str | os.PathLike) -> dict[str, Any]:
    """The camera values a profile states (partial values allowed; merge them with
    io.camera.merge_camera_values), map paths made absolute."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"camera profile {path}: no such file") from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"camera profile {path}: not readable JSON ({exc})") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT or not isinstance(
            document.get("camera"), dict):
        raise InputError(f"camera profile {path}: not a camera profile (needs \"format\": \"{FORMAT}\" and a "
                         "\"camera\" object)")
    values = dict(document["camera"])
    for name in MAP_FIELDS:
        if values.get(name):
            values[name] = str((path.parent / values[name]).resolve())
    return values
