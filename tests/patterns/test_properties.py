"""Property tests of the patterns' bookkeeping: compensation order and parallel aggregation.

A scripted in-process caller stands in for the gateway (the patterns only need ``invoke``), so
hypothesis can try hundreds of step/branch outcome combinations in seconds; the end-to-end tests
in this folder cover the same patterns over real agents.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.trace import NoOpTracer

from gateway.config.schema import ParallelWorkflow, SequentialWorkflow
from gateway.model import DataPart, GatewayError, Invocation, Message, Result, Role, TextPart, UpstreamError
from gateway.patterns.build import build_pattern
from gateway.patterns.run import WorkflowRunner


class ScriptedCaller:
    """Agent ``a3`` succeeds or fails as ``outcomes`` says; compensations always succeed."""

    def __init__(self, outcomes: dict[str, bool], delays: dict[str, float] | None = None) -> None:
        self.outcomes = outcomes
        self.delays = delays or {}
        self.calls: list[str] = []

    async def invoke(self, invocation: Invocation) -> Result:
        agent = invocation.agent
        self.calls.append(agent)
        await asyncio.sleep(self.delays.get(agent, 0))
        if not self.outcomes.get(agent, True):
            raise UpstreamError(f"{agent} failed", agent=agent)
        return Result(agent, (Message(Role.AGENT, (TextPart(agent), DataPart({agent: True, "last": agent}))),))


def runner(config: Any, caller: ScriptedCaller) -> WorkflowRunner:
    return WorkflowRunner("wf", build_pattern(config, {}), caller, NoOpTracer())  # type: ignore[arg-type]


def start() -> Invocation:
    return Invocation("wf", (Message(Role.USER, (TextPart("go"),)),))


steps = st.lists(st.tuples(st.booleans(), st.booleans(), st.booleans()), min_size=1, max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=steps)
def test_compensations_run_in_reverse_order_of_completion(plan: list[tuple[bool, bool, bool]]) -> None:
    """plan: per step (succeeds, optional, has a compensation)."""
    config = SequentialWorkflow.model_validate({
        "kind": "sequential",
        "steps": [
            {"name": f"s{i}", "agent": f"a{i}", "optional": optional,
             **({"compensate": {"agent": f"undo{i}"}} if compensated else {})}
            for i, (_, optional, compensated) in enumerate(plan)
        ],
    })
    caller = ScriptedCaller({f"a{i}": ok for i, (ok, _, _) in enumerate(plan)})
    first_fatal = next((i for i, (ok, optional, _) in enumerate(plan) if not ok and not optional), None)
    succeeded_before = [i for i, (ok, _, _) in enumerate(plan[: first_fatal if first_fatal is not None else len(plan)]) if ok]

    async def run() -> GatewayError | None:
        try:
            await runner(config, caller).invoke(start())
        except GatewayError as exc:
            return exc
        return None

    error = asyncio.run(run())
    undone = [c for c in caller.calls if c.startswith("undo")]
    if first_fatal is None and not any(ok for ok, _, _ in plan):
        # Every step was optional and failed: there is no answer to give.
        assert error is not None and "had no successful step" in error.message and undone == []
    elif first_fatal is None:
        assert error is None and undone == []
        assert [c for c in caller.calls if c.startswith("a")] == [f"a{i}" for i in range(len(plan))]
    else:
        assert error is not None
        # Nothing after the failed step ran; completed steps were undone last-first.
        assert [c for c in caller.calls if c.startswith("a")] == [f"a{i}" for i in range(first_fatal + 1)]
        assert undone == [f"undo{i}" for i in reversed(succeeded_before) if plan[i][2]]
        statuses = {s["name"]: s["status"] for s in error.details["steps"]}
        for i in succeeded_before:
            assert statuses[f"s{i}"] == ("compensated" if plan[i][2] else "ok")


branches = st.lists(st.tuples(st.booleans(), st.integers(0, 3)), min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(plan=branches, mode=st.sampled_from(["all", "first", "quorum", "merge"]), quorum=st.integers(1, 6))
def test_parallel_aggregation(plan: list[tuple[bool, int]], mode: str, quorum: int) -> None:
    """plan: per branch (succeeds, delay in ms)."""
    quorum = min(quorum, len(plan))
    config = ParallelWorkflow.model_validate({
        "kind": "parallel",
        "aggregate": mode,
        **({"quorum": quorum} if mode == "quorum" else {}),
        "branches": [{"name": f"b{i}", "agent": f"a{i}"} for i in range(len(plan))],
    })
    caller = ScriptedCaller(
        {f"a{i}": ok for i, (ok, _) in enumerate(plan)}, {f"a{i}": ms / 1000 for i, (_, ms) in enumerate(plan)}
    )
    needed = {"all": len(plan), "merge": len(plan), "first": 1, "quorum": quorum}[mode]
    successes = sum(ok for ok, _ in plan)

    async def run() -> Result | GatewayError:
        try:
            return await runner(config, caller).invoke(start())
        except GatewayError as exc:
            return exc

    outcome = asyncio.run(run())
    if successes < needed:
        assert isinstance(outcome, GatewayError)
        assert f"needed {needed} of {len(plan)} branches" in outcome.message
        return
    assert isinstance(outcome, Result)
    answered = [b for m in outcome.messages for b in [m.metadata.get("branch")] if b]
    missing = outcome.metadata["missing_branches"]
    assert set(missing) | set(answered) <= {f"b{i}" for i in range(len(plan))}
    assert not set(missing) & set(answered)
    if mode in ("all", "quorum"):
        assert answered == sorted(answered, key=lambda b: int(b[1:]))  # branch order, not finish order
        assert len(answered) >= needed
        assert all(plan[int(b[1:])][0] for b in answered)
    if mode == "merge":
        [message] = outcome.messages
        merged = next(p.data for p in message.parts if isinstance(p, DataPart))
        assert merged == {**{f"a{i}": True for i in range(len(plan))}, "last": f"a{len(plan) - 1}"}
    if mode == "first":
        assert len(outcome.messages) == 1 and outcome.messages[0].text in {f"a{i}" for i, (ok, _) in enumerate(plan) if ok}


@pytest.mark.parametrize("count", [8])
async def test_latency_tracks_the_slowest_needed_branch(count: int) -> None:
    delays = {f"a{i}": 0.01 * (i + 1) for i in range(count)}
    config = ParallelWorkflow.model_validate({
        "kind": "parallel", "aggregate": "quorum", "quorum": 2,
        "branches": [{"name": f"b{i}", "agent": f"a{i}"} for i in range(count)],
    })
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await runner(config, ScriptedCaller({}, delays)).invoke(start())
    elapsed = loop.time() - started
    assert elapsed < 0.06  # the 2nd-fastest branch takes 20 ms; the slowest would take 80 ms
    assert set(result.metadata["missing_branches"]) == {f"b{i}" for i in range(2, count)}
