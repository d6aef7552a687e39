"""Online evaluation: checks on a sample of live calls.

A *sync* evaluation runs inside the call's policy chain, just around the
attempt: a failed check fails the call, so retry and fallback policies act on
it. An *async* evaluation runs after the answer has gone back and is only
recorded. Results become span events (sync) or a span of their own linked to
the call (async), log records, and hook calls (metrics).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable, Mapping, Sequence

from opentelemetry import trace
from opentelemetry.trace import Link, Tracer

from gateway.checks import Check, CheckResult, Observation
from gateway.config.schema import Evaluation
from gateway.model import Event, Invocation, Result, UpstreamError
from gateway.policies.base import Handler, Policy, StreamHandler
from gateway.results import ResultCollector

log = logging.getLogger("agent_gateway.evals")

ResultHook = Callable[[str, CheckResult], None]


class CheckFailed(UpstreamError):
    """The agent answered, but its output failed a synchronous check."""


class EvaluationRecorder:
    """Where check results go: span events, logs and metric hooks."""

    def __init__(self, tracer: Tracer, hooks: Sequence[ResultHook] = ()) -> None:
        self.tracer = tracer
        self.hooks = list(hooks)

    def record(self, target: str, results: Sequence[CheckResult], span: trace.Span) -> None:
        for result in results:
            span.add_event(
                "evaluation",
                {
                    "agent_gateway.check": result.check,
                    "agent_gateway.check.passed": result.passed,
                    "agent_gateway.check.score": result.score,
                    "agent_gateway.check.reason": result.reason[:500],
                },
            )
            for hook in self.hooks:
                hook(target, result)
            if not result.passed:
                log.warning(
                    "check %s failed on %s: %s",
                    result.check,
                    target,
                    result.reason,
                    extra={"agent": target, "check": result.check, "score": result.score},
                )
        if results:
            span.set_attribute("agent_gateway.checks.passed", all(r.passed for r in results))


class Evaluator:
    """One evaluation: its checks, its sampling, and where results are recorded."""

    def __init__(
        self,
        config: Evaluation,
        checks: Mapping[str, Check],
        recorder: EvaluationRecorder,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.output_checks = [checks[name] for name in config.checks]
        self.step_checks = {step: [checks[name] for name in names] for step, names in config.steps.items()}
        self.recorder = recorder
        self.rng = rng or random.Random()
        self._background: set[asyncio.Task[None]] = set()

    def sampled(self) -> bool:
        return self.config.sample >= 1.0 or self.rng.random() < self.config.sample

    async def evaluate(self, observation: Observation) -> list[CheckResult]:
        jobs = [check.evaluate(observation) for check in self.output_checks]
        for step, step_checks in self.step_checks.items():
            record = observation.steps.get(step)
            output = (record or {}).get("output") or {}
            step_observation = Observation(
                observation.input_text, observation.input_data, str(output.get("text", "")), output.get("data")
            )
            for check in step_checks:
                jobs.append(_named(f"{step}:{check.name}", check, step_observation, record is not None))
        return list(await asyncio.gather(*jobs))

    async def check_sync(self, invocation: Invocation, result: Result) -> None:
        results = await self.evaluate(Observation.of(invocation, result))
        self.recorder.record(self.config.target, results, trace.get_current_span())
        failed = [r for r in results if not r.passed]
        if failed:
            raise CheckFailed(
                "the answer failed " + "; ".join(f"{r.check}: {r.reason}" for r in failed),
                agent=result.agent,
                transient=self.config.retryable,
                details={"checks": [r.as_json() for r in results]},
            )

    def check_later(self, invocation: Invocation, result: Result) -> None:
        link = Link(trace.get_current_span().get_span_context())
        task = asyncio.get_running_loop().create_task(self._async(invocation, result, link))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _async(self, invocation: Invocation, result: Result, link: Link) -> None:
        with self.recorder.tracer.start_as_current_span(f"evaluate {self.config.target}", links=[link]) as span:
            try:
                results = await self.evaluate(Observation.of(invocation, result))
            except Exception:
                log.exception("evaluation of %s failed", self.config.target)
                return
            self.recorder.record(self.config.target, results, span)

    async def aclose(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)


async def _named(name: str, check: Check, observation: Observation, present: bool) -> CheckResult:
    if not present:
        return CheckResult(name, False, 0.0, "the step did not run")
    result = await check.evaluate(observation)
    return CheckResult(name, result.passed, result.score, result.reason)


class EvaluationPolicy(Policy):
    """Evaluates a sample of calls: sync checks can fail the call, async ones are recorded later."""

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator

    async def invoke(self, invocation: Invocation, call_next: Handler) -> Result:
        result = await call_next(invocation)
        if not self.evaluator.sampled():
            return result
        if self.evaluator.config.mode == "sync":
            await self.evaluator.check_sync(invocation, result)
        else:
            self.evaluator.check_later(invocation, result)
        return result

    async def stream(self, invocation: Invocation, call_next: StreamHandler) -> AsyncIterator[Event]:
        # Bytes of a stream are already with the caller: checks can only be recorded.
        sampled = self.evaluator.sampled()
        collector = ResultCollector(invocation.agent)
        async for event in call_next(invocation):
            if sampled:
                collector.add(event)
            yield event
        if sampled:
            self.evaluator.check_later(invocation, collector.result())
