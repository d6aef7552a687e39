"""docs/config-reference.md is generated from the config schema and must stay current."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from pydantic import BaseModel, Field

from gateway.config.schema import Duration, GatewayConfig

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("config_reference", ROOT / "scripts" / "config_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_committed_reference_is_up_to_date() -> None:
    committed = (ROOT / "docs" / "config-reference.md").read_text(encoding="utf-8")
    assert committed == _script().render(), "docs/config-reference.md is stale: run `make config-reference`"


def test_every_top_level_key_is_listed() -> None:
    keys = {row.key for row in _script().rows(GatewayConfig)}
    assert set(GatewayConfig.model_fields) <= keys
    assert "routes[].split[].weight" in keys
    assert "workflows.<name> (kind: parallel).branches[].agent" in keys


class _Example(BaseModel):
    """An example section."""

    # How long to wait,
    # in two lines.
    wait: Duration = 2.5
    size: int = Field(default=3, ge=1, description="Given explicitly.")
    name: str


def test_rows_carry_types_defaults_and_descriptions() -> None:
    rows = {row.key: row for row in _script().rows(_Example, "example.")}
    assert rows["example.wait"].type == "duration"
    assert rows["example.wait"].default == "`2.5s`"
    assert rows["example.wait"].description == "How long to wait, in two lines."
    assert rows["example.size"].type == "int (≥ 1)"
    assert rows["example.size"].description == "Given explicitly."
    assert rows["example.name"].default == "required"
    assert rows["example.name"].description == ""


def test_every_row_is_described_resolved_and_consistent() -> None:
    rows = list(_script().rows(GatewayConfig))
    script = _script()
    script._resolve_forward_references()
    rendered = script.render()
    assert "ForwardRef" not in rendered, "a type named before its class: rebuild the models"
    assert [r.key for r in rows if not r.description] == [], "give these fields a comment in their gateway/config section module"
    assert "agents.<name>.tls.ca_file" in {r.key for r in script.rows(GatewayConfig)}
    # Durations read the same everywhere: `15s`, never a bare `15.0` beside `20s`.
    durations = [r for r in script.rows(GatewayConfig) if "duration" in r.type and r.default not in ("`null`", "required")]
    assert durations and [r.key for r in durations if not r.default.rstrip("]`").endswith("s")] == []


def test_operations_guide_names_only_real_keys() -> None:
    """Every `section.key` the guide mentions exists in the schema (it once documented `fallback.on`)."""
    import re

    keys = {row.key for row in _script().rows(GatewayConfig)}
    suffixes = {".".join(part for part in key.replace("[]", "").split(".") if not part.startswith("<")) for key in keys}
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    sections = ("retry", "fallback", "timeout", "circuit_breaker", "concurrency", "server", "runs", "bus", "state")
    alternatives = "|".join(sections)
    mentioned = set(re.findall(rf"`((?:{alternatives})\.[a-z_.]+)`", text))
    unknown = sorted(m for m in mentioned if not any(s == m or s.endswith("." + m) for s in suffixes))
    assert unknown == []
