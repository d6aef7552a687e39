"""Output checks and the evaluations that apply them to live calls."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from gateway.config.base import Name, Strict

CheckKind = Literal["json_schema", "required_fields", "regex", "contains", "not_contains", "length", "python", "judge"]
_CHECK_NEEDS: dict[str, tuple[str, ...]] = {
    "json_schema": ("schema_",),
    "required_fields": ("fields",),
    "regex": ("pattern",),
    "contains": ("value",),
    "not_contains": ("value",),
    "length": (),
    "python": ("function",),
    "judge": ("agent",),
}


class CheckConfig(Strict):
    """One named check on an output; which keys apply depends on ``kind``."""

    kind: CheckKind
    # json_schema: the JSON Schema the output must satisfy.
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    # JMESPath paths into the output's JSON that must be present and non-empty.
    fields: list[str] = Field(default_factory=list)
    # regex: a regular expression the output must match.
    pattern: str | None = None
    # contains / not_contains: the text to look for.
    value: str | None = None
    # regex, contains, not_contains: compare case-insensitively.
    ignore_case: bool = False
    # length: the fewest characters.
    min: int | None = Field(default=None, ge=0)
    # length: the most characters.
    max: int | None = Field(default=None, ge=0)
    # python: "package.module:function"
    function: str | None = None
    # judge: the routed agent that gives the verdict, and what it should judge.
    agent: Name | None = None
    # judge: what the judge is asked to assess.
    criteria: str = ""

    @model_validator(mode="after")
    def _needs(self) -> CheckConfig:
        missing = [key.rstrip("_") for key in _CHECK_NEEDS[self.kind] if not getattr(self, key)]
        if missing:
            raise ValueError(f"a {self.kind} check needs {', '.join(repr(m) for m in missing)}")
        if self.kind == "length" and self.min is None and self.max is None:
            raise ValueError("a length check needs 'min' or 'max'")
        return self


class Evaluation(Strict):
    """Checks applied to live calls of one agent, route or workflow."""

    # The agent, route or workflow whose calls are checked.
    target: Name
    # Names under `checks` applied to the final output.
    checks: list[Name] = Field(default_factory=list)
    # Checks on named step outputs of a workflow (session-level evaluation).
    steps: dict[str, list[Name]] = Field(default_factory=dict)
    # sync: a failed check fails the call (so retries and fallbacks act on it);
    # async: results are only recorded, never adding latency.
    mode: Literal["sync", "async"] = "async"
    # The fraction of calls evaluated.
    sample: float = Field(default=1.0, ge=0.0, le=1.0)
    # Whether the retry policy may repeat a call whose output failed a sync check.
    retryable: bool = False

    @model_validator(mode="after")
    def _some_check(self) -> Evaluation:
        if not self.checks and not self.steps:
            raise ValueError("an evaluation needs 'checks' or 'steps'")
        return self
