"""Durable workflow runs: journal each step, hold a lease, take over lapsed runs.

See :mod:`gateway.runs.journal` for what is stored. This gateway's durable runs
are kept here with their tasks: their leases are renewed every third of
``runs.lease``; lapsed runs of others (a gateway that died) are taken over at
the same pace and run again with their recorded outcomes replayed. Draining
waits ``grace`` for them, then *suspends* the rest: their tasks are cancelled
without compensating and their leases released, so another gateway takes them
over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.bus.base import Delivery, EventBus
from gateway.bus.consumer import Consumer, RedeliveryPolicy
from gateway.config.schema import GatewayConfig
from gateway.model import (
    JSON,
    Conflict,
    Context,
    DataPart,
    InvalidRequest,
    Invocation,
    Message,
    NotFound,
    Role,
    TextPart,
)
from gateway.runs.journal import JournaledRun, WorkflowJournal

if TYPE_CHECKING:
    from gateway.patterns.run import WorkflowRunner

log = logging.getLogger("agent_gateway.workflow")


@dataclass(eq=False)
class DurableRun:
    """One durable run in this gateway: its recorded outcomes and whether it is being suspended."""

    journal: WorkflowJournal
    run_id: str
    outcomes: dict[str, JSON] = field(default_factory=dict)
    suspended: bool = False

    async def record(self, step: str, outcome: JSON) -> None:
        self.outcomes[step] = outcome
        await self.journal.record_step(self.run_id, step, outcome)


def invocation_record(invocation: Invocation) -> dict[str, Any]:
    """What a durable run needs to start again: the workflow, its input and the ids."""
    last = invocation.messages[-1]
    data = next((p.data for p in last.parts if isinstance(p, DataPart)), None)
    ctx = invocation.context
    return {
        "agent": invocation.agent,
        "text": last.text,
        "data": data,
        "session_id": ctx.session_id,
        "thread_id": ctx.thread_id,
        "user_id": ctx.user_id,
        "request_id": ctx.request_id,
        "baggage": dict(ctx.baggage),
    }


def invocation_from_record(record: Mapping[str, Any]) -> Invocation:
    parts: list[TextPart | DataPart] = []
    if record.get("text"):
        parts.append(TextPart(str(record["text"])))
    if record.get("data") is not None:
        parts.append(DataPart(record["data"]))
    context = Context(
        session_id=str(record.get("session_id", "")),
        thread_id=str(record.get("thread_id", "")),
        user_id=str(record.get("user_id", "")),
        request_id=str(record.get("request_id", "")),
        baggage={str(k): str(v) for k, v in dict(record.get("baggage") or {}).items()},
    )
    return Invocation(str(record["agent"]), (Message(Role.USER, tuple(parts)),), context)


class DurableWorkflows:
    """The durable runs of one gateway and the loop keeping their leases."""

    def __init__(
        self, journal: WorkflowJournal, lease: float, runners: Callable[[], Mapping[str, WorkflowRunner]]
    ) -> None:
        self.journal = journal
        self.lease = lease
        self.runners = runners
        self.gateway_id = uuid.uuid4().hex
        self.active: dict[str, tuple[asyncio.Task[Any], DurableRun]] = {}
        self._loop: asyncio.Task[None] | None = None
        self._resumed: set[asyncio.Task[None]] = set()
        self.draining = False
        self._consumers: list[Consumer] = []

    async def start(self) -> None:
        await self.journal.open()
        await self._take_over()
        self._loop = asyncio.create_task(self._keep_leases(), name="agw-durable-workflows")

    async def begin(self, run_id: str, workflow: str, invocation: Invocation) -> DurableRun:
        run = JournaledRun(run_id, workflow, invocation_record(invocation), self.gateway_id)
        await self.journal.begin(run, self.lease)
        durable = DurableRun(self.journal, run_id, suspended=self.draining)
        task = asyncio.current_task()
        assert task is not None
        self.active[run_id] = (task, durable)
        return durable

    def begin_drain(self) -> None:
        """From now on a cancelled run is suspended (resumed elsewhere), not compensated:
        the fronts cancel their calls while draining, before :meth:`aclose` runs."""
        self.draining = True
        for _, durable in self.active.values():
            durable.suspended = True

    async def finish(self, durable: DurableRun, outcome: JSON, cancelled: bool) -> None:
        self.active.pop(durable.run_id, None)
        if not (cancelled and durable.suspended):
            await self.journal.finish(durable.run_id, outcome)

    async def _keep_leases(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self.journal.renew(list(self.active), self.gateway_id, self.lease)
                await self._take_over()
            except Exception:
                log.exception("durable workflows: renewing leases or taking runs over failed")

    async def _take_over(self) -> None:
        for run in await self.journal.claim_lapsed(self.gateway_id, self.lease):
            runner = self.runners().get(run.workflow)
            if runner is None:
                log.error(
                    "durable run %s is of workflow %r, which this gateway does not have", run.run_id, run.workflow
                )
                await self.journal.release([run.run_id], self.gateway_id)
                continue
            log.info("durable run %s of workflow %s: resuming here", run.run_id, run.workflow)
            task = asyncio.create_task(self._resume(runner, run), name=f"agw-resume-{run.run_id}")
            self._resumed.add(task)
            task.add_done_callback(self._resumed.discard)

    async def _resume(self, runner: WorkflowRunner, run: JournaledRun) -> None:
        outcomes = await self.journal.steps(run.run_id)
        durable = DurableRun(self.journal, run.run_id, dict(outcomes))
        task = asyncio.current_task()
        assert task is not None
        self.active[run.run_id] = (task, durable)
        with contextlib.suppress(Exception):
            await runner.resume(invocation_from_record(run.invocation), durable)

    async def pending(self, run_id: str, step: str) -> dict[str, Any]:
        """A waiting step's pending record (workflow, digest, input, expiry); NotFound otherwise."""
        found = await self.journal.get_wait(run_id, step)
        if not isinstance(found, dict):
            raise NotFound(f"run {run_id[:64]!r} has no step {step[:64]!r} waiting", agent="wait")
        return found

    async def resume_wait(self, run_id: str, step: str, digest: str, payload: JSON, approver: str) -> None:
        """Resume a waiting step: only that step of that run, only for the input it waits with,
        only before it expires, only once. The waiting run (at whichever gateway) sees it in the journal."""
        pending = await self.pending(run_id, step)
        if digest != pending.get("digest"):
            raise Conflict(
                f"the approval is for another input than step {step!r} waits with (digest mismatch)", agent="wait"
            )
        if time.time() >= float(pending.get("expires_at", 0)):
            raise Conflict(f"step {step!r} expired before it was resumed", agent="wait")
        if step in await self.journal.steps(run_id):
            raise Conflict(f"step {step!r} was already resumed", agent="wait")
        output = {"text": "", "data": {"payload": payload, "approver": approver}, "agent": "wait"}
        await self.journal.record_step(run_id, step, {"ok": output})

    async def listen(self, bus: EventBus, waits: Mapping[tuple[str, str], str]) -> None:
        """Resume waiting steps from events: ``waits`` maps (workflow, step) to its subject.

        An event's data is ``{"run_id", "digest", "payload"}``; the publisher was authorized
        by the `events` rules, and the approver recorded is ``event:<subject>``. A refused
        resumption (unknown run, another input, expired) is permanent: it is dead-lettered.
        """
        for (workflow, step), subject in waits.items():
            subscription = await bus.subscribe(subject, f"agw-wait.{workflow}.{step}")

            async def handle(delivery: Delivery, step: str = step) -> None:
                data = delivery.json()
                if not isinstance(data, dict) or not isinstance(data.get("run_id"), str):
                    raise InvalidRequest('a resuming event carries {"run_id", "digest", "payload"}')
                await self.resume_wait(
                    data["run_id"], step, str(data.get("digest", "")), data.get("payload"), f"event:{delivery.subject}"
                )

            consumer = Consumer(bus, subscription, handle, RedeliveryPolicy(), name=f"wait {workflow}.{step}")
            consumer.start()
            self._consumers.append(consumer)

    async def aclose(self, grace: float = 0.0) -> None:
        """Let runs finish for ``grace`` seconds, suspend the rest (another gateway resumes them)."""
        await asyncio.gather(*(c.stop() for c in self._consumers), return_exceptions=True)
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
        tasks = [task for task, _ in self.active.values()]
        if tasks and grace > 0:
            await asyncio.wait(tasks, timeout=grace)
        self.begin_drain()
        suspended = {run_id: (task, durable) for run_id, (task, durable) in self.active.items() if not task.done()}
        for task, _ in suspended.values():
            task.cancel()
        await asyncio.gather(*(task for task, _ in suspended.values()), return_exceptions=True)
        await asyncio.gather(*self._resumed, return_exceptions=True)
        if suspended:
            with contextlib.suppress(Exception):
                await self.journal.release(list(suspended), self.gateway_id)
        await self.journal.close()


def wait_subjects(config: GatewayConfig) -> dict[tuple[str, str], str]:
    """(workflow, step) -> subject of every wait step an event may resume."""
    out: dict[tuple[str, str], str] = {}
    for name, workflow in config.workflows.items():
        for step in getattr(workflow, "steps", ()):
            if step.wait is not None and step.wait.subject is not None:
                out[(name, step.name)] = step.wait.subject
    return out
