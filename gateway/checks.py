"""Checks: each looks at one output (and the input, and a workflow's step
outputs) and yields pass/fail, a score in [0, 1] and a reason.

Kinds: ``json_schema``, ``required_fields`` (JMESPath paths into the output's
JSON), ``regex``, ``contains``, ``not_contains``, ``length``, ``python`` (a
function by import path) and ``judge`` (another routed agent reads the input
and output and answers a verdict).
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import jmespath

from gateway.model import DataPart, GatewayError, Invocation, Message, Result, Role


@dataclass(frozen=True, slots=True)
class Observation:
    """What a check sees: the call's input and output (plus workflow step outputs)."""

    input_text: str
    input_data: Any
    text: str
    data: Any
    steps: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, invocation: Invocation, result: Result) -> Observation:
        last = invocation.messages[-1] if invocation.messages else Message(Role.USER, ())
        return cls(last.text, _first_data(last.parts), result.text, _result_data(result), _steps(result))


def _first_data(parts: tuple[Any, ...]) -> Any:
    return next((p.data for p in parts if isinstance(p, DataPart)), None)


def _result_data(result: Result) -> Any:
    for message in result.messages:
        if (data := _first_data(message.parts)) is not None:
            return data
    return None


def _steps(result: Result) -> dict[str, dict[str, Any]]:
    steps = result.metadata.get("steps")
    if not isinstance(steps, list):
        return {}
    return {str(s.get("name")): dict(s) for s in steps if isinstance(s, dict)}


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: str
    passed: bool
    score: float
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {"check": self.check, "passed": self.passed, "score": round(self.score, 4), "reason": self.reason}


class CheckSpec(Protocol):
    """A check's configuration as the builders read it (``config.schema.CheckConfig`` is one): structural,
    so config can ask whether a check builds without this module importing config."""

    @property
    def kind(self) -> str: ...
    @property
    def schema_(self) -> dict[str, Any] | None: ...
    @property
    def fields(self) -> Sequence[str]: ...
    @property
    def pattern(self) -> str | None: ...
    @property
    def value(self) -> str | None: ...
    @property
    def ignore_case(self) -> bool: ...
    @property
    def min(self) -> int | None: ...
    @property
    def max(self) -> int | None: ...
    @property
    def function(self) -> str | None: ...
    @property
    def agent(self) -> str | None: ...
    @property
    def criteria(self) -> str: ...


class Judge(Protocol):
    async def __call__(self, agent: str, payload: Mapping[str, Any]) -> Result: ...


class Check(Protocol):
    name: str

    async def evaluate(self, observation: Observation) -> CheckResult: ...


def _verdict(name: str, passed: bool, reason: str, score: float | None = None) -> CheckResult:
    return CheckResult(name, passed, (1.0 if passed else 0.0) if score is None else score, reason)


@dataclass
class SyncCheck:
    """A check that needs no I/O."""

    name: str
    test: Callable[[Observation], CheckResult]

    async def evaluate(self, observation: Observation) -> CheckResult:
        return self.test(observation)


def _subject(observation: Observation) -> Any:
    if observation.data is not None:
        return observation.data
    try:
        return json.loads(observation.text)
    except (json.JSONDecodeError, TypeError):
        return None


def json_schema_check(name: str, schema: dict[str, Any]) -> SyncCheck:
    import jsonschema  # here, not at the top: it loads (~2.5 MB) only where a config has a json_schema check

    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)

    def test(observation: Observation) -> CheckResult:
        subject = _subject(observation)
        errors = sorted(validator.iter_errors(subject), key=lambda e: list(e.path))
        if not errors:
            return _verdict(name, True, "matches the schema")
        first = errors[0]
        where = "/".join(str(p) for p in first.path) or "(root)"
        return _verdict(name, False, f"{where}: {first.message}")

    return SyncCheck(name, test)


def required_fields_check(name: str, fields: Sequence[str]) -> SyncCheck:
    compiled = [(path, jmespath.compile(path)) for path in fields]

    def test(observation: Observation) -> CheckResult:
        subject = _subject(observation)
        missing = [path for path, expr in compiled if expr.search(subject) in (None, "", [], {})]
        score = 1 - len(missing) / len(compiled) if compiled else 1.0
        if missing:
            return _verdict(name, False, f"missing: {', '.join(missing)}", score)
        return _verdict(name, True, "all fields present")

    return SyncCheck(name, test)


def regex_check(name: str, pattern: str) -> SyncCheck:
    compiled = re.compile(pattern)

    def test(observation: Observation) -> CheckResult:
        found = compiled.search(observation.text) is not None
        return _verdict(name, found, f"{'matches' if found else 'does not match'} /{pattern}/")

    return SyncCheck(name, test)


def contains_check(name: str, value: str, negate: bool, ignore_case: bool) -> SyncCheck:
    needle = value.lower() if ignore_case else value

    def test(observation: Observation) -> CheckResult:
        haystack = observation.text.lower() if ignore_case else observation.text
        present = needle in haystack
        passed = present != negate
        return _verdict(name, passed, f"{'contains' if present else 'does not contain'} {value!r}")

    return SyncCheck(name, test)


def length_check(name: str, minimum: int | None, maximum: int | None) -> SyncCheck:
    def test(observation: Observation) -> CheckResult:
        size = len(observation.text)
        if minimum is not None and size < minimum:
            return _verdict(name, False, f"{size} characters, fewer than {minimum}")
        if maximum is not None and size > maximum:
            return _verdict(name, False, f"{size} characters, more than {maximum}")
        return _verdict(name, True, f"{size} characters")

    return SyncCheck(name, test)


def load_function(path: str) -> Callable[..., Any]:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"expected 'package.module:function', got {path!r}")
    function = getattr(importlib.import_module(module_name), attr)
    if not callable(function):
        raise ValueError(f"{path} is not callable")
    return function  # type: ignore[no-any-return]


@dataclass
class PythonCheck:
    """``function(observation)`` returning a bool, ``(passed, score, reason)`` or a CheckResult; may be async."""

    name: str
    function: Callable[[Observation], Any]

    async def evaluate(self, observation: Observation) -> CheckResult:
        try:
            outcome = self.function(observation)
            if isinstance(outcome, Awaitable):
                outcome = await outcome
        except Exception as exc:  # a user's check must not take the gateway down
            return _verdict(self.name, False, f"the check raised {type(exc).__name__}: {exc}")
        if isinstance(outcome, CheckResult):
            return outcome
        if isinstance(outcome, tuple) and len(outcome) == 3:
            return CheckResult(self.name, bool(outcome[0]), float(outcome[1]), str(outcome[2]))
        return _verdict(self.name, bool(outcome), "the function returned " + repr(outcome))


_VERDICT_TEXT = re.compile(r"^\s*(PASS|FAIL)\b[:\s-]*(.*)", re.IGNORECASE | re.DOTALL)


@dataclass
class JudgeCheck:
    """Asks a routed judge agent: it receives ``{"criteria", "input", "output"}`` and
    answers ``{"pass": bool, "score": float, "reason": str}`` or text starting PASS/FAIL."""

    name: str
    agent: str
    criteria: str
    judge: Judge

    async def evaluate(self, observation: Observation) -> CheckResult:
        payload = {
            "criteria": self.criteria,
            "input": observation.input_data or observation.input_text,
            "output": observation.data if observation.data is not None else observation.text,
        }
        try:
            result = await self.judge(self.agent, payload)
        except GatewayError as exc:
            return _verdict(self.name, False, f"the judge {self.agent!r} failed: {exc.message}")
        verdict = _result_data(result)
        if verdict is None:
            try:
                verdict = json.loads(result.text)
            except json.JSONDecodeError:
                verdict = None
        if isinstance(verdict, dict) and "pass" in verdict:
            passed = bool(verdict["pass"])
            score = float(verdict.get("score", 1.0 if passed else 0.0))
            return CheckResult(self.name, passed, score, str(verdict.get("reason", "")))
        if match := _VERDICT_TEXT.match(result.text):
            return _verdict(self.name, match.group(1).upper() == "PASS", match.group(2).strip())
        return _verdict(self.name, False, f"the judge gave no verdict: {result.text[:200]!r}")


def build_check(name: str, config: CheckSpec, judge: Judge) -> Check:
    kind = config.kind
    if kind == "json_schema":
        return json_schema_check(name, config.schema_ or {})
    if kind == "required_fields":
        return required_fields_check(name, config.fields)
    if kind == "regex":
        return regex_check(name, config.pattern or "")
    if kind in ("contains", "not_contains"):
        return contains_check(name, config.value or "", kind == "not_contains", config.ignore_case)
    if kind == "length":
        return length_check(name, config.min, config.max)
    if kind == "python":
        return PythonCheck(name, load_function(config.function or ""))
    assert kind == "judge"
    return JudgeCheck(name, config.agent or "", config.criteria, judge)


def check_config_problem(config: CheckSpec) -> str | None:
    """A reason ``config`` cannot build (for config loading), or None."""
    errors: tuple[type[Exception], ...] = (ValueError, re.error, ImportError, jmespath.exceptions.JMESPathError)
    if config.kind == "json_schema":
        import jsonschema  # as in json_schema_check

        errors = (*errors, jsonschema.SchemaError)
    try:
        build_check("probe", config, _no_judge)
    except errors as exc:
        return str(exc).splitlines()[0]
    return None


async def _no_judge(agent: str, payload: Mapping[str, Any]) -> Result:
    raise RuntimeError("not a live judge")
