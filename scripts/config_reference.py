"""Print the gateway config reference (every key, its type, default and meaning) as Markdown.

Run: python scripts/config_reference.py > docs/config-reference.md   (or `make config-reference`)

Everything comes from gateway/config/schema.py (the root, re-exporting the section modules
beside it): the pydantic models give keys, types,
defaults and constraints; a field's `description=` or, failing that, the comment lines
just above it in the source give the meaning. tests/deploy/test_config_reference.py fails
when the committed docs/config-reference.md is stale.
"""

from __future__ import annotations

import inspect
import re
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.config import schema
from gateway.config.schema import GatewayConfig, parse_duration

HEADER = """\
# Gateway configuration reference

Generated from `gateway/config/schema.py` by `scripts/config_reference.py` (`make
config-reference`); do not edit by hand. The narrative guide is [operations.md](operations.md).

Notation: `<name>` is a key you choose (letters, digits, `.`, `_`, `-`); `[]` is a list
item. A *duration* is `"250ms"`, `"5s"`, `"2m"`, `"1h"` or a number of seconds. Any string
value may use `${VAR}`, `${VAR:-default}` and `$$` (a literal `$`). Unknown keys are errors.
"""


@dataclass(frozen=True)
class Row:
    key: str
    type: str
    default: str
    description: str


def field_comments(model: type[BaseModel]) -> dict[str, str]:
    """The comment lines directly above each field of a model's class body (or of the base that declares it)."""
    comments: dict[str, str] = {}
    for base in reversed(model.__mro__):
        if isinstance(base, type) and issubclass(base, BaseModel) and base is not BaseModel:
            comments.update(_own_field_comments(base))
    return comments


def _own_field_comments(model: type[BaseModel]) -> dict[str, str]:
    comments: dict[str, str] = {}
    pending: list[str] = []
    try:
        source = inspect.getsource(model)
    except (OSError, TypeError):
        return comments
    for line in source.splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        match = re.match(r"^    ([A-Za-z_][A-Za-z0-9_]*)\s*:", line)
        if match and pending:
            comments[match.group(1)] = " ".join(pending)
        pending = []
    return comments


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """The bare type of an Annotated[...] and its metadata."""
    metadata: list[Any] = []
    while get_origin(annotation) is Annotated:
        annotation, *extra = get_args(annotation)
        metadata.extend(extra)
    return annotation, metadata


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _constraints(metadata: list[Any]) -> str:
    parts = []
    for item in metadata:
        for attr, symbol in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"), ("min_length", "min length")):
            value = getattr(item, attr, None)
            if value is not None and isinstance(item, annotated_types.BaseMetadata | FieldInfo):
                parts.append(f"{symbol} {value}")
    return ", ".join(parts)


def _special(metadata: list[Any]) -> str | None:
    """Names for the schema's validated string/number kinds."""
    for item in metadata:
        func = getattr(item, "func", None)
        if func is parse_duration:
            return "duration"
        if func is not None and "_check_address" in getattr(getattr(func, "__code__", None), "co_names", ()):
            return "HOST:PORT"
        if func is not None and getattr(func, "__name__", "") == "check_template":
            return "template"
        if getattr(item, "pattern", None) and "A-Za-z0-9._-" in str(item.pattern):
            return "name"
        if isinstance(item, FieldInfo) and (nested := _special(item.metadata)):
            return nested
    return None


def type_name(annotation: Any, metadata: list[Any] | None = None) -> str:
    annotation, inner = _unwrap(annotation)
    metadata = [*(metadata or []), *inner]
    if special := _special(metadata):
        return special
    if _is_union(annotation):
        names = list(dict.fromkeys(type_name(arg) for arg in get_args(annotation)))
        if names == ["section"] and len(get_args(annotation)) > 1:
            return "section (by `kind`)"
        return " or ".join(names)
    origin = get_origin(annotation)
    if origin is Literal:
        return " \\| ".join(f'`"{value}"`' for value in get_args(annotation))
    if origin is list:
        return f"list of {type_name(get_args(annotation)[0])}"
    if origin is dict:
        key, value = get_args(annotation)
        return f"map of {type_name(key)} → {type_name(value)}"
    if annotation is type(None):
        return "null"
    if annotation is Any:
        return "any"
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return "section"
    return getattr(annotation, "__name__", str(annotation))


def _render_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict) and not value:
        return "{}"
    if isinstance(value, list) and not value:
        return "[]"
    return str(value)


def default_of(field: FieldInfo, kind: str) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return ""
    if kind.startswith("list of duration") and isinstance(value, list):
        return "`[" + ", ".join(f"{v:g}s" for v in value) + "]`"
    if "duration" in kind.split(" or ") and isinstance(value, int | float) and not isinstance(value, bool):
        return f"`{value:g}s`"
    return f"`{_render_value(value)}`"


def _models_in(annotation: Any) -> Iterator[tuple[str, type[BaseModel]]]:
    """(key suffix, model) for each model a field holds: directly, in a list, in a map,
    or as a member of a union tagged by `kind`."""
    annotation, _ = _unwrap(annotation)
    origin = get_origin(annotation)
    if _is_union(annotation):
        members = [_unwrap(a)[0] for a in get_args(annotation)]
        models = [m for m in members if inspect.isclass(m) and issubclass(m, BaseModel)]
        tagged = len(models) > 1 and all("kind" in m.model_fields for m in models)
        for model in models:
            if tagged:
                (kind,) = get_args(_unwrap(model.model_fields["kind"].annotation)[0])
                yield f" (kind: {kind})", model
            else:
                yield "", model
        for member in members:
            if get_origin(member) in (list, dict):
                yield from _models_in(member)
    elif origin is list:
        for suffix, model in _models_in(get_args(annotation)[0]):
            yield "[]" + suffix, model
    elif origin is dict:
        for suffix, model in _models_in(get_args(annotation)[1]):
            yield ".<name>" + suffix, model
    elif inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        yield "", annotation


def rows(model: type[BaseModel], prefix: str = "") -> Iterator[Row]:
    comments = field_comments(model)
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        kind = type_name(field.annotation, list(field.metadata))
        constraints = _constraints(list(field.metadata))
        description = field.description or comments.get(name, "")
        models = list(_models_in(field.annotation))
        if not description and len(models) == 1 and models[0][1].__doc__:
            description = " ".join(models[0][1].__doc__.split())
        elif not description and len(models) > 1 and all(suffix.endswith(")") for suffix, _ in models):
            shapes = ", ".join(suffix.rsplit(" ", 1)[-1].rstrip(")") for suffix, _ in models)
            description = f"`kind` picks the shape: {shapes}; the keys of each follow."
        if not description and name == "kind" and get_origin(_unwrap(field.annotation)[0]) is Literal:
            description = "Selects this shape."
        yield Row(key, f"{kind} ({constraints})" if constraints else kind, default_of(field, kind), description)
        for suffix, nested in models:
            yield from rows(nested, f"{key}{suffix}.")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") if "\\|" not in text else text.replace("\n", " ")


def _resolve_forward_references() -> None:
    """Models that name a class defined later in the schema keep a ForwardRef until rebuilt."""
    package = schema.__name__.rpartition(".")[0] + "."
    for value in vars(schema).values():
        if inspect.isclass(value) and issubclass(value, BaseModel) and value.__module__.startswith(package):
            value.model_rebuild(force=True, _types_namespace=vars(schema))


def render() -> str:
    _resolve_forward_references()
    lines = [HEADER, "| Key | Type | Default | Description |", "|---|---|---|---|"]
    for row in rows(GatewayConfig):
        lines.append(f"| `{row.key}` | {_cell(row.type)} | {row.default} | {_cell(row.description)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
