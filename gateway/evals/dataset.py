"""Offline datasets: JSONL, one case per line.

{"id": "c1", "input": "otters" | {...}, "session_id": "optional",
 "checks": ["configured-check", ...],
 "expect": {"contains": "OTTER", "regex": "^...$", "equals": "exact text",
            "json_schema": {...}, "required_fields": ["a.b"], "length": {"min": 1, "max": 500}},
 "steps": {"<step>": {<same keys as expect>}}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from gateway.checks import Check, Judge, SyncCheck, _verdict, build_check
from gateway.config.schema import CheckConfig


class DatasetError(ValueError):
    """A dataset line is not a valid case; the message names the file and line."""


@dataclass(frozen=True)
class Case:
    id: str
    input: Any
    session_id: str = ""
    checks: tuple[Check, ...] = ()
    steps: dict[str, tuple[Check, ...]] = field(default_factory=dict)


def _equals(name: str, expected: str) -> SyncCheck:
    return SyncCheck(
        name,
        lambda o: _verdict(name, o.text.strip() == expected.strip(), f"expected {expected!r}, got {o.text[:200]!r}"),
    )


def expectation_checks(expect: dict[str, Any], judge: Judge, prefix: str = "") -> tuple[Check, ...]:
    checks: list[Check] = []
    for kind, value in expect.items():
        name = f"{prefix}{kind}"
        if kind == "equals":
            checks.append(_equals(name, str(value)))
            continue
        options: dict[str, Any] = {
            "contains": {"value": value},
            "not_contains": {"value": value},
            "regex": {"pattern": value},
            "json_schema": {"schema": value},
            "required_fields": {"fields": value},
            "length": value if isinstance(value, dict) else {"min": value},
        }.get(kind, value if isinstance(value, dict) else {})
        checks.append(build_check(name, CheckConfig.model_validate({"kind": kind, **options}), judge))
    return tuple(checks)


def load_dataset(text: str, path: str, configured: dict[str, Check], judge: Judge) -> list[Case]:
    """Parse JSONL ``text`` (read from ``path``, named in errors) into cases."""
    cases = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: not JSON: {exc.msg}") from None
        if not isinstance(raw, dict) or "input" not in raw:
            raise DatasetError(f"{where}: each line needs an object with an 'input'")
        try:
            named = tuple(configured[n] for n in raw.get("checks", []))
        except KeyError as exc:
            raise DatasetError(f"{where}: no check named {exc.args[0]!r} in the config") from None
        try:
            checks = named + expectation_checks(raw.get("expect", {}), judge)
            steps = {
                step: expectation_checks(expect, judge, f"{step}:") for step, expect in raw.get("steps", {}).items()
            }
        except (ValidationError, ValueError) as exc:
            raise DatasetError(f"{where}: {str(exc).splitlines()[0]}") from None
        cases.append(Case(str(raw.get("id", number)), raw["input"], str(raw.get("session_id", "")), checks, steps))
    if not cases:
        raise DatasetError(f"{path}: the dataset has no cases")
    return cases
