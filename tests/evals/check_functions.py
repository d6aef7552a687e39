"""Check functions referenced by import path from test configs."""

from __future__ import annotations

from gateway.checks import CheckResult, Observation


def mentions_input(observation: Observation) -> bool:
    return observation.input_text.lower() in observation.text.lower()


async def graded(observation: Observation) -> tuple[bool, float, str]:
    score = min(1.0, len(observation.text) / 20)
    return score >= 0.5, score, f"{len(observation.text)} chars"


def explodes(observation: Observation) -> CheckResult:
    raise RuntimeError("bug in a user's check")
