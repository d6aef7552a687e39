"""Sequential pipeline with compensating actions (a saga).

Steps run in order, each input rendered from the workflow input and earlier
outputs. When a required step fails, the completed steps' compensations run
in reverse order and the workflow fails, saying which steps ran, failed and
were compensated; an optional step's failure is recorded and skipped. A step
with a condition (``when``, JMESPath over the document) that does not hold is
skipped without being called.

Compensations run whatever stopped the workflow: a step's error, the
deadline passing, the caller cancelling or the gateway draining. Each undo
gets a time budget of its own (``compensate.timeout``, else the workflow's
``compensation_timeout``) starting when it starts, and runs shielded from
the cancellation that stopped the workflow; each runs once, and its outcome
is recorded on the step (``compensated`` or ``compensation_failed``).
"""

from __future__ import annotations

import asyncio
import logging

from gateway.config.schema import SequentialWorkflow
from gateway.model import GatewayError, Result, Role
from gateway.patterns.run import WorkflowRun
from gateway.template import Condition, Template, message_for

log = logging.getLogger("agent_gateway.workflow")


class SequentialPattern:
    def __init__(self, config: SequentialWorkflow) -> None:
        self.config = config
        self.inputs = {s.name: Template(s.input) for s in config.steps}
        self.compensations = {s.name: Template(s.compensate.input) for s in config.steps if s.compensate}
        self.output = Template(config.output) if config.output is not None else None
        self.conditions = {s.name: Condition(s.when) for s in config.steps if s.when is not None}
        self.waits = {s.name: Template(s.wait.input) for s in config.steps if s.wait is not None}
        # How often a waiting step looks for its resumption in the journal (any gateway may take it).
        self.poll = 0.25

    async def run(self, run: WorkflowRun) -> Result:
        done: list[str] = []
        last: Result | None = None
        for step in self.config.steps:
            condition = self.conditions.get(step.name)
            if condition is not None and not condition.holds(run.document()):
                run.skip(step.name, step.agent or "wait", f"its condition {condition.source!r} did not hold")
                continue
            try:
                if step.wait is not None:
                    last = await run.wait(step.name, self.waits[step.name], step.wait.expires, self.poll)
                else:
                    assert step.agent is not None
                    last = await run.call(step.name, step.agent, self.inputs[step.name], step.timeout)
            except GatewayError as exc:
                if step.optional:
                    run.records[-1].status = "skipped"
                    run.steps[step.name] = {"text": "", "data": None, "status": "failed", "error": exc.message}
                    continue
                compensated = await self._compensate_shielded(run, done)
                note = f"; compensated: {', '.join(compensated)}" if compensated else ""
                raise run.failure(
                    f"workflow {run.name!r} failed at step {step.name!r}: {exc.message}{note}", exc, step.name
                ) from None
            except asyncio.CancelledError:
                if run.durable is None or not run.durable.suspended:
                    await self._compensate_shielded(run, done)  # a suspended run compensates where it resumes
                raise
            done.append(step.name)
        if self.output is not None:
            return run.result((message_for(self.output.render(run.document()), Role.AGENT),))
        if last is None:
            raise run.failure(f"workflow {run.name!r} had no successful step")
        return run.result(last.messages)

    async def _compensate_shielded(self, run: WorkflowRun, done: list[str]) -> list[str]:
        """Compensate in a task the workflow's cancellation does not reach; a cancel that
        arrives meanwhile is delivered once the undo calls are over (each is bounded)."""
        if not any(s.compensate is not None for s in self.config.steps if s.name in done):
            return []
        task = asyncio.ensure_future(self._compensate(run, done))
        cancelled = False
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError
        return task.result()

    async def _compensate(self, run: WorkflowRun, done: list[str]) -> list[str]:
        compensated = []
        for name in reversed(done):
            step = next(s for s in self.config.steps if s.name == name)
            if step.compensate is None:
                continue
            record = next(r for r in run.records if r.name == name)
            try:
                await run.call(
                    f"{name}.compensate",
                    step.compensate.agent,
                    self.compensations[name],
                    None,
                    budget=step.compensate.timeout or self.config.compensation_timeout,
                    step=run.steps.get(name, {}),
                )
            except GatewayError as exc:
                record.status = "compensation_failed"
                log.error("compensation of step %s in workflow %s failed: %s", name, run.name, exc)
                continue
            record.status = "compensated"
            compensated.append(name)
        return compensated
