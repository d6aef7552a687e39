"""Wire JSON in tests."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any


def typed(value: Any) -> Any:
    """A comparable form that tells 1 from 1.0 and True from 1, and ignores key order."""
    if isinstance(value, enum.Enum):
        return ("enum", value.value)
    if isinstance(value, bool) or value is None:
        return ("const", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("float", value)
    if isinstance(value, str):
        return ("str", value)
    if isinstance(value, Mapping):
        return ("map", sorted((k, typed(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return ("list", [typed(v) for v in value])
    if dataclasses.is_dataclass(value):
        return (type(value).__name__, [(f.name, typed(getattr(value, f.name))) for f in dataclasses.fields(value)])
    raise TypeError(f"unexpected {type(value)}")
