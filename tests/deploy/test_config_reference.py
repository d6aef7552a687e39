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
