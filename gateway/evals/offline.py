"""``agent-gateway eval``: run a dataset through an agent or workflow, in-process.

Cases run with bounded concurrency through an ordinary :class:`Gateway`
(routes, policies and workflows apply), each output and each workflow step is
checked, and the report gives pass rates and latency percentiles for the
whole target and for every step.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.checks import CheckResult, Observation
from gateway.evals.dataset import Case
from gateway.model import Context, GatewayError, Invocation, Result, new_request_id
from gateway.template import message_for


@dataclass
class CaseResult:
    id: str
    passed: bool
    latency_ms: float
    error: str = ""
    checks: list[CheckResult] = field(default_factory=list)
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "passed": self.passed,
            "latency_ms": round(self.latency_ms, 3),
            "error": self.error,
            "checks": [c.as_json() for c in self.checks],
            "steps": self.steps,
        }


def percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}
    if len(values) == 1:
        return {"p50": values[0], "p90": values[0], "p99": values[0], "max": values[0]}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "p50": round(cuts[49], 3),
        "p90": round(cuts[89], 3),
        "p99": round(cuts[98], 3),
        "max": round(max(values), 3),
    }


async def run_case(invoke: Callable[[Invocation], Any], target: str, case: Case) -> CaseResult:
    context = Context(session_id=case.session_id, request_id=new_request_id())
    invocation = Invocation(target, (message_for(case.input),), context)
    started = time.monotonic()
    try:
        result: Result = await invoke(invocation)
    except GatewayError as exc:
        failed_steps = {
            s["name"]: {"status": s["status"], "duration_ms": s.get("duration_ms", 0.0), "passed": False}
            for s in exc.details.get("steps", [])
            if isinstance(s, dict)
        }
        return CaseResult(case.id, False, (time.monotonic() - started) * 1000, exc.message, steps=failed_steps)
    latency = (time.monotonic() - started) * 1000
    observation = Observation.of(invocation, result)
    checks = list(await asyncio.gather(*(c.evaluate(observation) for c in case.checks)))
    steps: dict[str, dict[str, Any]] = {}
    for name, record in observation.steps.items():
        output = record.get("output") or {}
        step_observation = Observation(
            observation.input_text, observation.input_data, str(output.get("text", "")), output.get("data")
        )
        step_checks = list(await asyncio.gather(*(c.evaluate(step_observation) for c in case.steps.get(name, ()))))
        checks.extend(step_checks)
        steps[name] = {
            "status": record.get("status"),
            "duration_ms": record.get("duration_ms", 0.0),
            "passed": record.get("status") == "ok" and all(c.passed for c in step_checks),
        }
    for name in case.steps:
        if name not in steps:
            checks.append(CheckResult(f"{name}:ran", False, 0.0, "the step did not run"))
    return CaseResult(case.id, all(c.passed for c in checks), latency, checks=checks, steps=steps)


async def run_dataset(
    invoke: Callable[[Invocation], Any],
    target: str,
    cases: Sequence[Case],
    concurrency: int,
    progress: Callable[[], object] = lambda: None,
) -> list[CaseResult]:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(case: Case) -> CaseResult:
        async with semaphore:
            outcome = await run_case(invoke, target, case)
        progress()
        return outcome

    return list(await asyncio.gather(*(one(case) for case in cases)))


def build_report(target: str, results: Sequence[CaseResult]) -> dict[str, Any]:
    steps: dict[str, dict[str, Any]] = {}
    for result in results:
        for name, step in result.steps.items():
            entry = steps.setdefault(name, {"runs": 0, "passed": 0, "latencies": []})
            entry["runs"] += 1
            entry["passed"] += int(bool(step["passed"]))
            entry["latencies"].append(float(step["duration_ms"]))
    checks: dict[str, dict[str, int]] = {}
    for result in results:
        for check in result.checks:
            entry_c = checks.setdefault(check.check, {"runs": 0, "passed": 0})
            entry_c["runs"] += 1
            entry_c["passed"] += int(check.passed)
    passed = sum(r.passed for r in results)
    return {
        "target": target,
        "cases": len(results),
        "passed": passed,
        "pass_rate": round(passed / len(results), 4) if results else 0.0,
        "latency_ms": percentiles([r.latency_ms for r in results]),
        "steps": {
            name: {
                "runs": s["runs"],
                "passed": s["passed"],
                "pass_rate": round(s["passed"] / s["runs"], 4),
                "latency_ms": percentiles(s["latencies"]),
            }
            for name, s in steps.items()
        },
        "checks": {name: {**c, "pass_rate": round(c["passed"] / c["runs"], 4)} for name, c in checks.items()},
        "results": [r.as_json() for r in results],
    }
