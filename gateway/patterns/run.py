"""What every pattern shares: the workflow document, step invocations, step
records and the event sink that makes one run serve both invoke and stream."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from gateway import model
from gateway.model import (
    JSON,
    DataPart,
    Event,
    GatewayError,
    Invocation,
    Message,
    Result,
    Role,
    TextPart,
    UpstreamError,
)
from gateway.patterns.durable import DurableRun, DurableWorkflows
from gateway.propagation import WORKFLOW_RUN_BAGGAGE
from gateway.template import Template, message_for, output_record

# A journaled failure comes back as the class of its code.
_ERROR_CLASSES: dict[str, type[GatewayError]] = {
    cls.code.value: cls
    for cls in (
        model.UpstreamError,
        model.UpstreamRejected,
        model.UpstreamNotFound,
        model.UpstreamTimeout,
        model.UpstreamUnavailable,
        model.ResourceExhausted,
        model.CircuitOpen,
        model.InvalidRequest,
        model.PermissionDenied,
        model.NotFound,
        model.Conflict,
        model.Cancelled,
    )
}


def replayed_error(outcome: dict[str, Any]) -> GatewayError:
    cls = _ERROR_CLASSES.get(str(outcome.get("code")), UpstreamError)
    return cls(str(outcome.get("message", "")), agent=str(outcome.get("agent", "")))


def replayed_result(agent: str, output: dict[str, Any]) -> Result:
    parts: list[TextPart | DataPart] = []
    if output.get("text"):
        parts.append(TextPart(str(output["text"])))
    if output.get("data") is not None:
        parts.append(DataPart(output["data"]))
    return Result(str(output.get("agent") or agent), (Message(Role.AGENT, tuple(parts)),))


class Caller(Protocol):
    """The gateway as patterns see it: one routed invocation, policies included."""

    async def invoke(self, invocation: Invocation) -> Result: ...


@dataclass
class StepRecord:
    name: str
    agent: str
    status: str = "pending"  # ok | failed | skipped | compensated | compensation_failed | cancelled
    duration_ms: float = 0.0
    error: str = ""
    # The step's output (text and JSON), for session-level checks and debugging.
    output: dict[str, Any] | None = None

    def as_json(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {
            "name": self.name,
            "agent": self.agent,
            "status": self.status,
            "duration_ms": round(self.duration_ms, 3),
        }
        if self.error:
            out["error"] = self.error
        if self.output is not None:
            out["output"] = self.output
        return out


class WorkflowFailed(UpstreamError):
    """A workflow could not produce its answer with no step's error to blame (a manager
    that never answered); ``details.steps`` says what ran."""


def workflow_error(message: str, cause: GatewayError | None, agent: str, details: dict[str, JSON]) -> GatewayError:
    """The workflow's error: the cause's class, code and status (a step's deadline stays
    DEADLINE_EXCEEDED, a refused step keeps its code), the workflow's message and details."""
    if cause is None:
        return WorkflowFailed(message, agent=agent, details=details, transient=False)
    error = type(cause).__new__(type(cause))
    GatewayError.__init__(
        error,
        message,
        agent=agent,
        details={**details, "cause": {"code": cause.code.value, "message": cause.message, "agent": cause.agent}},
        transient=cause.transient,
        retry_after=cause.retry_after,
        http_status=cause.status,
        reached=cause.reached,
    )
    return error


@dataclass
class WorkflowRun:
    """One execution: the document templates read, the records, and the events emitted."""

    name: str
    invocation: Invocation
    caller: Caller
    tracer: Tracer
    emit: Callable[[Event], Awaitable[None]]
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: list[StepRecord] = field(default_factory=list)
    # Set for a durable workflow: recorded outcomes are replayed, new ones journaled.
    durable: DurableRun | None = None

    def document(self, **extra: Any) -> dict[str, Any]:
        last = self.invocation.messages[-1]
        data = next((p.data for p in last.parts if isinstance(p, DataPart)), None)
        ctx = self.invocation.context
        return {
            "input": {"text": last.text, "data": data},
            "steps": self.steps,
            "context": {
                "session_id": ctx.session_id,
                "thread_id": ctx.thread_id,
                "user_id": ctx.user_id,
                "request_id": ctx.request_id,
            },
            **extra,
        }

    async def call(
        self,
        step_name: str,
        agent: str,
        template: Template,
        timeout: float | None,
        *,
        budget: float | None = None,
        **extra: Any,
    ) -> Result:
        """Run one step as an ordinary routed invocation, in a span of its own.

        ``budget``: the step's own time budget from now, in place of what is left of the
        workflow's deadline (compensations, which must run after that deadline passed).
        """
        record = StepRecord(step_name, agent)
        self.records.append(record)
        value = template.render(self.document(**extra))
        context = self.invocation.context
        if budget is not None:
            context = dataclasses.replace(context, deadline=time.monotonic() + budget)
        if self.durable is not None:
            if (outcome := self.durable.outcomes.get(step_name)) is not None:
                return await self._replay(record, step_name, agent, outcome)
            context = dataclasses.replace(context, idempotency_key=f"{self.run_id}:{step_name}")
        invocation = dataclasses.replace(
            self.invocation,
            agent=agent,
            messages=(message_for(value),),
            context=context.with_timeout(timeout),
            attempt=1,
        )
        await self.emit(
            Event("step", data={"workflow": self.name, "step": step_name, "agent": agent, "status": "started"})
        )
        started = time.monotonic()
        with self.tracer.start_as_current_span(
            f"workflow.step {step_name}",
            kind=SpanKind.INTERNAL,
            attributes={
                "agent_gateway.workflow": self.name,
                "agent_gateway.step": step_name,
                "gen_ai.agent.name": agent,
            },
        ) as span:
            try:
                result = await self.caller.invoke(invocation)
            except GatewayError as exc:
                record.status, record.error = "failed", str(exc)
                span.set_status(Status(StatusCode.ERROR, exc.message))
                if self.durable is not None and not isinstance(exc, model.Cancelled):
                    await self.durable.record(
                        step_name, {"error": {"code": exc.code.value, "message": exc.message, "agent": exc.agent}}
                    )
                raise
            except asyncio.CancelledError:
                record.status = "cancelled"
                raise
            finally:
                record.duration_ms = (time.monotonic() - started) * 1000
        if self.durable is not None:
            # Written before the next step starts: a run resumed elsewhere does not call it again.
            await self.durable.record(step_name, {"ok": output_record(result)})
        return await self._succeeded(record, step_name, agent, result)

    async def _replay(self, record: StepRecord, step_name: str, agent: str, outcome: JSON) -> Result:
        """A step a durable run already completed (before its gateway died): its recorded outcome."""
        if isinstance(outcome, dict) and "error" in outcome:
            record.status, record.error = "failed", str(outcome["error"].get("message", ""))
            raise replayed_error(outcome["error"])
        output = outcome.get("ok", {}) if isinstance(outcome, dict) else {}
        return await self._succeeded(record, step_name, agent, replayed_result(agent, output))

    async def _succeeded(self, record: StepRecord, step_name: str, agent: str, result: Result) -> Result:
        record.status = "ok"
        self.steps[step_name] = {**output_record(result), "status": "ok"}
        record.output = {"text": self.steps[step_name]["text"], "data": self.steps[step_name]["data"]}
        await self.emit(
            Event(
                "step",
                data={
                    "workflow": self.name,
                    "step": step_name,
                    "agent": agent,
                    "status": "ok",
                    "output": self.steps[step_name]["text"],
                },
            )
        )
        return result

    async def wait(self, step_name: str, template: Template, expires: float, poll: float) -> Result:
        """Pause until the step is resumed (its outcome appears in the journal) or expires.

        The pending wait is journaled with the digest of its rendered input, so the
        approval binds to this step of this run with this input; a resumed run keeps
        the original expiry.
        """
        assert self.durable is not None, "a wait step needs a durable workflow"
        record = StepRecord(step_name, "wait")
        self.records.append(record)
        if (outcome := self.durable.outcomes.get(step_name)) is not None:
            return await self._replay(record, step_name, "wait", outcome)
        value = template.render(self.document())
        digest = hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        pending = await self.durable.journal.put_wait(
            self.run_id,
            step_name,
            {"workflow": self.name, "digest": digest, "input": value, "expires_at": time.time() + expires},
        )
        await self.emit(
            Event(
                "step",
                data={"workflow": self.name, "step": step_name, "status": "waiting", "digest": pending["digest"]},
            )
        )
        while True:
            outcomes = await self.durable.journal.steps(self.run_id)
            if (outcome := outcomes.get(step_name)) is not None:
                self.durable.outcomes[step_name] = outcome
                return await self._replay(record, step_name, "wait", outcome)
            left = float(pending["expires_at"]) - time.time()
            if left <= 0:
                error = model.UpstreamTimeout(f"step {step_name!r} was not resumed before it expired", agent="wait")
                record.status, record.error = "failed", error.message
                await self.durable.record(
                    step_name, {"error": {"code": error.code.value, "message": error.message, "agent": "wait"}}
                )
                raise error
            await asyncio.sleep(min(poll, left))

    def skip(self, step_name: str, agent: str, reason: str) -> None:
        """Record a step that was not called (its condition did not hold)."""
        self.records.append(StepRecord(step_name, agent, status="skipped", error=reason))
        self.steps[step_name] = {"text": "", "data": None, "status": "skipped"}

    def failure(self, message: str, cause: GatewayError | None = None, step: str = "") -> GatewayError:
        """The workflow's error, keeping the cause's code; ``step``: where it failed."""
        details: dict[str, JSON] = {
            "workflow": self.name,
            "run_id": self.run_id,
            "steps": [r.as_json() for r in self.records],
        }
        if step:
            details["step"] = step
        return workflow_error(message, cause, self.name, details)

    def result(self, messages: tuple[Message, ...]) -> Result:
        metadata = {"workflow": self.name, "run_id": self.run_id, "steps": [r.as_json() for r in self.records]}
        return Result(self.name, messages, metadata)

    @property
    def run_id(self) -> str:
        return self.invocation.context.baggage.get(WORKFLOW_RUN_BAGGAGE, "")


class Pattern(Protocol):
    async def run(self, run: WorkflowRun) -> Result: ...


class WorkflowRunner:
    """Runs one configured workflow for both fronts: unary, or streamed step by step."""

    def __init__(
        self,
        name: str,
        pattern: Pattern,
        caller: Caller,
        tracer: Tracer,
        durable: Callable[[], DurableWorkflows | None] | None = None,
    ) -> None:
        self.name = name
        self.pattern = pattern
        self.caller = caller
        self.tracer = tracer
        # The gateway's durable runs, for a workflow with `durable: true` (None: not durable).
        self.durable = durable

    async def resume(self, invocation: Invocation, durable: DurableRun) -> Result:
        """Run a journaled run again (its gateway died or drained): recorded steps replay."""

        async def ignore(event: Event) -> None:
            return None

        return await self._run(invocation, ignore, durable)

    async def _run(
        self,
        invocation: Invocation,
        emit: Callable[[Event], Awaitable[None]],
        resumed: DurableRun | None = None,
    ) -> Result:
        # Every run gets an id in the baggage: its steps (and whatever they call) share
        # the state service's workflow scope through it.
        run_id = resumed.run_id if resumed is not None else uuid.uuid4().hex
        if not invocation.record.workflow_run:
            invocation.record.workflow_run = run_id  # the outermost run, for the caller
        baggage = {**invocation.context.baggage, WORKFLOW_RUN_BAGGAGE: run_id}
        invocation = dataclasses.replace(invocation, context=dataclasses.replace(invocation.context, baggage=baggage))
        attributes = {"agent_gateway.workflow": self.name, "agent_gateway.workflow.run": run_id}
        with self.tracer.start_as_current_span(
            f"workflow {self.name}", kind=SpanKind.INTERNAL, attributes=attributes
        ) as span:
            run = WorkflowRun(self.name, invocation, self.caller, self.tracer, emit)
            durable = self.durable() if self.durable is not None else None
            if durable is None:
                try:
                    return await self.pattern.run(run)
                except GatewayError as exc:
                    span.set_status(Status(StatusCode.ERROR, exc.message))
                    raise
            run.durable = resumed or await durable.begin(run_id, self.name, invocation)
            outcome: JSON = {"cancelled": True}
            try:
                result = await self.pattern.run(run)
                outcome = {"ok": output_record(result)}
                return result
            except GatewayError as exc:
                span.set_status(Status(StatusCode.ERROR, exc.message))
                outcome = {"error": {"code": exc.code.value, "message": exc.message}}
                raise
            finally:
                cancelled = outcome == {"cancelled": True}
                await asyncio.shield(durable.finish(run.durable, outcome, cancelled))

    async def invoke(self, invocation: Invocation) -> Result:
        async def ignore(event: Event) -> None:
            return None

        return await self._run(invocation, ignore)

    async def stream(self, invocation: Invocation) -> AsyncIterator[Event]:
        """Step events as they happen, then the answer's messages."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=64)
        parent = trace.get_current_span()

        async def produce() -> Result:
            with trace.use_span(parent, end_on_exit=False):
                try:
                    return await self._run(invocation, queue.put)
                finally:
                    await queue.put(None)

        task = asyncio.create_task(produce())
        try:
            while (event := await queue.get()) is not None:
                yield event
            result = await task
        finally:
            if not task.done():
                task.cancel()  # the client went away: stop the steps still running
                await asyncio.gather(task, return_exceptions=True)
        for message in result.messages:
            yield Event("message", message=message, data=dict(result.metadata))
