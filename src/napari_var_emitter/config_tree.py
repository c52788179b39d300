"""Build nested config dataclasses from plain mappings (JSON/YAML), naming bad keys."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

from .errors import InputError


def build_dataclass(cls: type, values: Mapping[str, Any], where: str = "") -> Any:
    """Build `cls` (a dataclass, possibly with dataclass fields) from `values`.

    Unknown keys, nested values that are not mappings, values of the wrong type (for fields typed
    int, float, bool, str or a tuple of them) and values the dataclass rejects are InputErrors
    naming the dotted key path.
    """
    if not isinstance(values, Mapping):
        raise InputError(f"config{where}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise InputError(f"config{where}: unknown key(s) {unknown}; known: {sorted(names)}")
    kwargs = {}
    for key, value in values.items():
        hint = _without_none(hints[key])
        if value is None:
            kwargs[key] = value
        elif dataclasses.is_dataclass(hint):
            kwargs[key] = build_dataclass(hint, value, f"{where}.{key}")
        elif isinstance(value, Mapping):
            raise InputError(f"config{where}.{key}: draw ranges must be resolved first ({value})")
        else:
            _check_type(f"{where}.{key}", hint, value)
            kwargs[key] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise InputError(f"config{where}: {exc}") from exc


_SIMPLE = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}


def _check_type(key: str, hint: Any, value: Any) -> None:
    """InputError when `value` cannot be a `hint` (int, float, bool, str, tuple[X, ...]); other
    hints are left to the dataclass."""
    if typing.get_origin(hint) is tuple:  # a list of items (or one item, where the dataclass widens it)
        items = [a for a in typing.get_args(hint) if a is not Ellipsis]
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if items and items[0] in _SIMPLE:
                _check_type(key, items[0], item)
        return
    if hint not in _SIMPLE:
        return
    ok = {int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, (int, float)) and not isinstance(value, bool),
          bool: isinstance(value, bool), str: isinstance(value, str)}[hint]
    if not ok:
        raise InputError(f"config{key}: expected {_SIMPLE[hint]}, got {value!r}")


def _without_none(hint: Any) -> Any:
    """X for an optional X (X | None), else the hint itself."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if len(args) == 1 and type(None) in typing.get_args(hint) else hint

