"""Every check kind, passing and failing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from gateway.checks import Observation, build_check, check_config_problem
from gateway.config.schema import CheckConfig
from gateway.model import DataPart, Message, Result, Role, TextPart


def observe(text: str = "", data: Any = None, input_text: str = "otters") -> Observation:
    return Observation(input_text, None, text, data)


async def judge_by_length(agent: str, payload: Mapping[str, Any]) -> Result:
    output = payload["output"]
    verdict = {"pass": len(str(output)) > 5, "score": 0.9, "reason": f"{agent} read {payload['criteria']}"}
    return Result(agent, (Message(Role.AGENT, (DataPart(verdict),)),))


async def judge_in_text(agent: str, payload: Mapping[str, Any]) -> Result:
    return Result(agent, (Message(Role.AGENT, (TextPart("FAIL: too vague"),)),))


def check(kind: str, judge: Any = judge_by_length, **options: Any) -> Any:
    return build_check("c", CheckConfig.model_validate({"kind": kind, **options}), judge)


@pytest.mark.parametrize(
    ("kind", "options", "good", "bad", "reason"),
    [
        ("json_schema", {"schema": {"type": "object", "required": ["answer"],
                                    "properties": {"answer": {"type": "string"}}}},
         observe(data={"answer": "yes"}), observe(data={"answer": 3}), "answer: 3 is not of type 'string'"),
        ("json_schema", {"schema": {"type": "object", "required": ["a"]}},
         observe(text='{"a": 1}'), observe(text="not json"), "None is not of type 'object'"),
        ("required_fields", {"fields": ["answer", "sources[0].url"]},
         observe(data={"answer": "x", "sources": [{"url": "u"}]}), observe(data={"answer": "x"}),
         "missing: sources[0].url"),
        ("regex", {"pattern": r"\bOTTERS?\b"}, observe("I like OTTERS"), observe("I like cats"),
         "does not match"),
        ("contains", {"value": "otter", "ignore_case": True}, observe("Otters!"), observe("cats"),
         "does not contain 'otter'"),
        ("not_contains", {"value": "as an AI"}, observe("fine"), observe("as an AI model"), "contains 'as an AI'"),
        ("length", {"min": 3, "max": 10}, observe("abcd"), observe("ab"), "2 characters, fewer than 3"),
        ("length", {"max": 3}, observe("abc"), observe("abcd"), "4 characters, more than 3"),
        ("python", {"function": "tests.evals.check_functions:mentions_input"}, observe("about otters"),
         observe("about cats"), "returned False"),
        ("python", {"function": "tests.evals.check_functions:graded"}, observe("x" * 15), observe("x" * 4),
         "4 chars"),
        ("judge", {"agent": "j", "criteria": "is it long"}, observe("long enough"), observe("short"),
         "j read is it long"),
    ],
)
async def test_check_kinds(kind: str, options: dict[str, Any], good: Observation, bad: Observation,
                           reason: str) -> None:
    c = check(kind, **options)
    passed = await c.evaluate(good)
    failed = await c.evaluate(bad)
    assert passed.passed, passed
    assert not failed.passed, failed
    assert reason in failed.reason
    assert 0.0 <= failed.score < passed.score <= 1.0 or kind == "judge"


async def test_scores_and_text_verdicts() -> None:
    partial = await check("required_fields", fields=["a", "b"]).evaluate(observe(data={"a": 1}))
    assert partial.score == 0.5
    verdict = await check("judge", judge=judge_in_text, agent="j").evaluate(observe("x"))
    assert (verdict.passed, verdict.reason) == (False, "too vague")
    broken = await check("python", function="tests.evals.check_functions:explodes").evaluate(observe("x"))
    assert not broken.passed
    assert "RuntimeError: bug in a user's check" in broken.reason


def test_bad_check_configs_are_reported() -> None:
    assert "unterminated" in (check_config_problem(CheckConfig(kind="regex", pattern="(")) or "") or \
        "missing )" in (check_config_problem(CheckConfig(kind="regex", pattern="(")) or "")
    assert check_config_problem(CheckConfig.model_validate({"kind": "json_schema", "schema": {"type": 5}}))
    assert "No module named" in (check_config_problem(CheckConfig(kind="python", function="nope.mod:f")) or "")
    with pytest.raises(ValueError, match="a regex check needs 'pattern'"):
        CheckConfig(kind="regex")
