"""Executes background runs and answers for them: submit, status, result, events, cancel.

A run is an ordinary routed stream (routes, policies, tracing apply) that
runs in a task of its own instead of the caller's request. Its events get
sequence ids 1, 2, ... and are recorded in the run store in batches; its final
result or error goes into its record. The gateway adds no time limit of its
own: only the caller's timeout (``options.timeout``, ``x-timeout-ms``) and the
timeouts configured on routes, agents and policies apply; the listeners'
stream limits do not.

Following a run (``events``) replays the recorded events after a sequence id
and then the live ones, with no gap and no duplicate: a run executing in this
gateway is followed from memory (its recent events stay there until they are
written); a run executing elsewhere in the fleet is followed by polling the
store, where its events are always written before its final status.

Cancelling cancels the run's task: each adapter's stream, abandoned, cancels
the upstream run its framework's own way (LangGraph run cancel, A2A task
cancel, closing the HTTP stream), and a workflow's steps, being awaited
inside it, are cancelled with it. A cancel asked at another gateway of the
fleet is picked up within ``runs.poll_interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from opentelemetry import context as otel_context
from opentelemetry.trace import Status, StatusCode

from gateway import wire, wire_json
from gateway.bus.publisher import EventPublisher
from gateway.config.schema import RunsConfig
from gateway.invoker import Invoker
from gateway.model import (
    JSON,
    Cancelled,
    Context,
    Event,
    GatewayError,
    Invocation,
    NotFound,
    UpstreamUnavailable,
)
from gateway.model import (
    StatusCode as GatewayStatus,
)
from gateway.results import ResultCollector
from gateway.runs.store import RunPage, RunRecord, RunStatus, RunStore, StoredEvent, check_run_id, new_run_id
from gateway.runs.webhook import WebhookSender

log = logging.getLogger("agent_gateway.runs")

# Recent events of a local run kept in memory for its followers (older ones are read from the store).
MEMORY_WINDOW = 1024
# How long an explicit cancel waits for the run to record its cancelled status.
CANCEL_WAIT = 10.0
# The same at shutdown, past the drain deadline (a run not recorded by then is reported
# failed by the fleet once its lease lapses).
SHUTDOWN_CANCEL_WAIT = 1.0

CancelReason = Literal["client", "shutdown"]


@dataclass(eq=False)
class ActiveRun:
    """A run executing in this gateway: its task, its recent events and who waits for them."""

    record: RunRecord
    task: asyncio.Task[None] | None = None
    started: bool = False
    cancel_reason: CancelReason | None = None
    # Recent events (sequence ids window_start, window_start + 1, ...).
    window: list[StoredEvent] = field(default_factory=list)
    window_start: int = 1
    # Events recorded in memory but not yet written to the store.
    pending: list[StoredEvent] = field(default_factory=list)
    written: int = 0
    flusher: asyncio.Task[None] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    def after(self, sequence: int) -> list[StoredEvent]:
        index = sequence - self.window_start + 1
        return self.window[index:] if index >= 0 else []

    def trim(self) -> None:
        """Drop written events beyond the window (followers read them from the store)."""
        excess = len(self.window) - MEMORY_WINDOW
        removable = self.written - self.window_start + 1
        drop = min(excess, removable)
        if drop > 0:
            del self.window[:drop]
            self.window_start += drop


class AnswerView(Protocol):
    """What a run's owner may see of its events and its error (the fronts' steps view)."""

    def event(self, event: Event) -> Event: ...

    def error(self, error: GatewayError) -> GatewayError: ...


class RunNotFinished(GatewayError):
    """The result of a run that is still going was asked for."""

    code = GatewayStatus.FAILED_PRECONDITION
    http_status = 409


class RunManager:
    """The runs of one gateway (and, through the store, of its fleet)."""

    def __init__(
        self,
        store: RunStore,
        gateway: Invoker,
        config: RunsConfig,
        webhooks: WebhookSender,
        publisher: EventPublisher | None = None,
    ) -> None:
        self.store = store
        self.gateway = gateway
        self.config = config
        self.webhooks = webhooks
        self.publisher = publisher
        self.gateway_id = uuid.uuid4().hex
        self._active: dict[str, ActiveRun] = {}
        self._callbacks: set[asyncio.Task[None]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        self._poller = asyncio.create_task(self._poll_cancels(), name="agw-runs-cancels")

    # -- submit and execute ------------------------------------------------

    async def submit(
        self,
        invocation: Invocation,
        owner: str,
        webhook_url: str = "",
        view: AnswerView | None = None,
        *,
        streaming: bool = True,
    ) -> RunRecord:
        """Route the invocation now (so a bad call fails at once), record the run, start it.

        ``view`` cuts what the owner may not see (a workflow's steps) from events and errors
        before they are recorded. ``streaming=False`` runs it as a foreground invoke would (the
        adapter's unary call, whose reply may differ from its stream), recorded as one ``message``
        event per reply message.
        """
        if self._closing:
            raise UpstreamUnavailable("the gateway is shutting down: submit the run to another gateway")
        if webhook_url:
            self.webhooks.check_url(webhook_url)
        ctx = invocation.context
        record = RunRecord(
            run_id=new_run_id(),
            agent=invocation.agent,
            owner=owner,
            session_id=ctx.session_id,
            thread_id=ctx.thread_id,
            user_id=ctx.user_id,
            request_id=ctx.request_id,
            webhook_url=webhook_url,
            gateway_id=self.gateway_id,
        )
        if streaming:
            answering, events = self.gateway.open_stream(invocation)
        else:
            answering, events = invocation.agent, self._invoked(invocation)
        await self.store.save(record)
        active = ActiveRun(record)
        self._active[record.run_id] = active
        parent = otel_context.get_current()
        active.task = asyncio.create_task(
            self._execute(active, invocation, answering, events, parent, view), name=f"agw-run-{record.run_id}"
        )
        return record

    async def _execute(
        self,
        active: ActiveRun,
        invocation: Invocation,
        answering: str,
        events: AsyncIterator[Event],
        parent: otel_context.Context,
        view: AnswerView | None = None,
    ) -> None:
        active.started = True
        record = active.record
        tracer = self.gateway.tracer
        with tracer.start_as_current_span(
            f"run {record.agent}", context=parent, attributes={"agent_gateway.run_id": record.run_id}
        ) as span:
            collector = ResultCollector(answering)
            outcome: dict[str, object]
            try:
                if active.cancel_reason is not None:
                    raise asyncio.CancelledError
                active.record = record = record.updated(status=RunStatus.RUNNING, answered_by=answering)
                await self.store.save(record)
                sequence = 0
                async for event in events:
                    sequence += 1
                    if view is not None:
                        event = view.event(event)
                    collector.add(event)
                    self._record_event(active, event, sequence)
                result = collector.result()
                outcome = {
                    "status": RunStatus.SUCCEEDED,
                    "result": wire_json.result_json(result, invocation.context),
                }
            except asyncio.CancelledError:
                if (task := asyncio.current_task()) is not None:
                    task.uncancel()
                outcome = self._cancelled_outcome(active)
            except GatewayError as exc:
                exc = view.error(exc) if view is not None else exc
                outcome = {"status": RunStatus.FAILED, "error": wire.error_json(exc, record.request_id)["error"]}
                outcome["error_status"] = exc.status
            except Exception as exc:
                log.exception("run %s failed unexpectedly", record.run_id)
                detail = {
                    "code": GatewayStatus.INTERNAL.value,
                    "message": f"internal gateway error: {type(exc).__name__}",
                }
                outcome = {"status": RunStatus.FAILED, "error": detail, "error_status": 500}
            finally:
                close = getattr(events, "aclose", None)
                if close is not None:
                    with contextlib.suppress(Exception):
                        await close()
            if outcome["status"] != RunStatus.SUCCEEDED:
                span.set_status(Status(StatusCode.ERROR, str(outcome["status"])))
            await self._finish(active, outcome)

    async def _invoked(self, invocation: Invocation) -> AsyncIterator[Event]:
        result = await self.gateway.invoke(invocation)
        for message in result.messages:
            yield Event("message", message=message)
        if result.metadata:
            # What the adapter read of the framework's status (an A2A task waiting for input...).
            yield Event("status", data=dict(result.metadata))

    def _cancelled_outcome(self, active: ActiveRun) -> dict[str, object]:
        record = active.record
        if active.cancel_reason == "shutdown":
            error: GatewayError = UpstreamUnavailable(
                "the gateway stopped during the run: submit it again", agent=record.agent
            )
            return {
                "status": RunStatus.FAILED,
                "error": wire.error_json(error, record.request_id)["error"],
                "error_status": error.status,
            }
        error = Cancelled("the run was cancelled", agent=record.agent)
        return {
            "status": RunStatus.CANCELLED,
            "error": wire.error_json(error, record.request_id)["error"],
            "error_status": error.status,
        }

    def _record_event(self, active: ActiveRun, event: Event, sequence: int) -> None:
        if sequence > self.config.max_events:
            active.record = active.record.updated(events_dropped=active.record.events_dropped + 1)
            return
        # The stored event is the wire's Event JSON, exact (what the HTTP stream sends), without protobuf.
        stored = StoredEvent(sequence, json.dumps(wire_json.stream_event_json(event, sequence)["event"]))
        active.window.append(stored)
        active.pending.append(stored)
        active.record = active.record.updated(last_sequence=sequence)
        if active.flusher is None or active.flusher.done():
            active.flusher = asyncio.create_task(self._flush(active))
        active.notify()

    async def _flush(self, active: ActiveRun) -> None:
        """Write pending events; events arriving meanwhile go in the next batch."""
        while active.pending:
            batch, active.pending = active.pending, []
            try:
                await self.store.append_events(active.record.run_id, batch)
            except GatewayError as exc:
                # Followers here still see them from memory; the result is not affected.
                log.warning("run %s: %d events could not be stored: %s", active.record.run_id, len(batch), exc)
            active.written = batch[-1].sequence
            active.trim()

    async def _finish(self, active: ActiveRun, outcome: dict[str, object]) -> None:
        if active.flusher is not None:
            await asyncio.shield(active.flusher)
        await self._flush(active)
        record = active.record.updated(
            status=outcome["status"],
            result=outcome.get("result"),
            error=outcome.get("error"),
            finished_at=time.time(),
        )
        if "error_status" in outcome:
            error = dict(record.error or {})
            error["httpStatus"] = outcome["error_status"]
            record = record.updated(error=error)
        try:
            await self.store.save(record)
        except GatewayError as exc:
            log.error("run %s finished %s but could not be recorded: %s", record.run_id, record.status, exc)
        active.record = record
        self._active.pop(record.run_id, None)
        active.notify()
        if record.webhook_url or (self.publisher is not None and self.config.completion_subject):
            task = asyncio.create_task(self._announce(record), name=f"agw-run-callback-{record.run_id}")
            self._callbacks.add(task)
            task.add_done_callback(self._callbacks.discard)

    # -- completion callbacks --------------------------------------------------

    def completion_payload(self, record: RunRecord) -> dict[str, JSON]:
        payload: dict[str, JSON] = {
            "runId": record.run_id,
            "status": record.status.value,
            "agent": record.agent,
            "answeredBy": record.answered_by,
            "sessionId": record.session_id,
            "threadId": record.thread_id,
            "requestId": record.request_id,
            "createdAt": record.created_at,
            "finishedAt": record.finished_at,
            "timestamp": time.time(),
        }
        if record.result is not None:
            payload["result"] = record.result
        if record.error is not None:
            payload["error"] = {k: v for k, v in dict(record.error).items() if k != "httpStatus"}
        return payload

    async def _announce(self, record: RunRecord) -> None:
        payload = self.completion_payload(record)
        subject = self.config.completion_subject
        if subject and self.publisher is not None:
            context = Context(record.session_id, record.thread_id, record.user_id, record.request_id)
            try:
                await self.publisher.publish(
                    f"{subject}.{record.status.value}", payload, context, f"{record.run_id}-{record.status.value}"
                )
            except GatewayError as exc:
                log.warning("run %s: the completion event could not be published: %s", record.run_id, exc)
        if record.webhook_url:
            status = await self.webhooks.deliver(record.webhook_url, payload, record.run_id)
            with contextlib.suppress(GatewayError):
                await self.store.save(record.updated(webhook_status=status))

    # -- queries -------------------------------------------------------------

    async def get(self, run_id: str, owner: str) -> RunRecord:
        """The run, for its owner only (others learn nothing, not even that it exists)."""
        check_run_id(run_id)
        active = self._active.get(run_id)
        record = active.record if active is not None else await self.store.get(run_id)
        if record is None or record.owner != owner:
            raise NotFound(f"no run {run_id!r}: it never existed, expired, or belongs to someone else")
        if active is None:
            record = self._unless_lost(record)
        if active is not None and active.cancel_reason is not None:
            record = record.updated(cancel_requested=True)
        return record

    async def result(self, run_id: str, owner: str) -> RunRecord:
        """The finished run (result or error); RunNotFinished while it runs."""
        record = await self.get(run_id, owner)
        if not record.status.finished:
            raise RunNotFinished(
                f"run {run_id} is {record.status.value}: poll its status or follow its events",
                details={"runId": run_id, "status": record.status.value},
            )
        return record

    async def list_session(self, session_id: str, owner: str, *, before: str = "", limit: int = 50) -> RunPage:
        return await self.store.list_session(session_id, owner, before=before, limit=limit)

    async def cancel(self, run_id: str, owner: str) -> RunRecord:
        """Cancel the run (wherever in the fleet it runs); a finished run is returned as it is."""
        record = await self.get(run_id, owner)
        if record.status.finished:
            return record
        active = self._active.get(run_id)
        if active is None:
            await self.store.request_cancel(run_id)
            return record.updated(cancel_requested=True)
        self._cancel_local(active, "client")
        if active.task is not None:
            await asyncio.wait({active.task}, timeout=CANCEL_WAIT)
        return await self.get(run_id, owner)

    def _cancel_local(self, active: ActiveRun, reason: CancelReason) -> None:
        if active.cancel_reason is None:
            active.cancel_reason = reason
        if active.started and active.task is not None:
            active.task.cancel()

    async def _poll_cancels(self) -> None:
        """Cancel local runs that another gateway was asked to cancel; renew their leases."""
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(self.config.poll_interval)
            if not self._active:
                continue
            if time.monotonic() - renewed >= self.config.lease / 3:
                renewed = time.monotonic()
                await self._renew_leases()
            try:
                asked = await self.store.cancels_requested(list(self._active))
            except GatewayError as exc:
                log.warning("could not look for run cancels: %s", exc)
                continue
            for run_id in asked:
                if (active := self._active.get(run_id)) is not None:
                    self._cancel_local(active, "client")

    async def _renew_leases(self) -> None:
        """Refresh ``updated_at`` of the runs executing here, so the fleet knows they are alive."""
        for active in list(self._active.values()):
            if active.record.status.finished:
                continue
            active.record = active.record.updated()  # stamps updated_at
            try:
                await self.store.save(active.record)
            except GatewayError as exc:
                log.warning("could not renew the lease of run %s: %s", active.record.run_id, exc)

    def _unless_lost(self, record: RunRecord) -> RunRecord:
        """A run another gateway stopped refreshing is reported failed: that gateway died."""
        if record.status.finished or time.time() - record.updated_at <= self.config.lease:
            return record
        error = UpstreamUnavailable(
            f"the gateway running this run stopped refreshing it {self.config.lease:g}s ago "
            "(it crashed or lost its store): submit it again",
            agent=record.agent,
        )
        detail = wire.error_json(error, record.request_id)["error"]
        return record.updated(status=RunStatus.FAILED, error={**detail, "httpStatus": error.status})

    # -- following -------------------------------------------------------------

    async def follow(self, run_id: str, owner: str, after: int = 0) -> AsyncIterator[StoredEvent | RunRecord]:
        """The run's events with sequence ids above ``after``, live until it ends, then its final record."""
        await self.get(run_id, owner)
        while True:
            active = self._active.get(run_id)
            if active is not None:
                if after + 1 < active.window_start:
                    # Older than the memory window: those were written already.
                    batch = await self.store.events(run_id, after, min(500, active.window_start - after - 1))
                else:
                    batch = active.after(after)
                    if not batch:
                        changed = active.changed
                        await changed.wait()
                        continue
                for stored in batch:
                    yield stored
                if batch:
                    after = batch[-1].sequence
                continue
            batch = await self.store.events(run_id, after)
            if batch:
                for stored in batch:
                    yield stored
                after = batch[-1].sequence
                continue
            record = await self.store.get(run_id)
            if record is None:
                raise NotFound(f"run {run_id} expired while it was followed")
            record = self._unless_lost(record)
            if record.status.finished:
                # Events are written before the final status: one more read catches the last batch.
                tail = await self.store.events(run_id, after)
                for stored in tail:
                    yield stored
                yield record
                return
            await asyncio.sleep(self.config.poll_interval)

    # -- shutdown --------------------------------------------------------------

    async def aclose(self, grace: float) -> None:
        """Refuse new runs, let running ones finish for ``grace`` seconds, then stop them
        (recorded as failed: the gateway stopped) and finish the callbacks: all within
        ``grace`` and a second (the drain deadline), not a grace period per step."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        self._closing = True
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        tasks = {a.task for a in self._active.values() if a.task is not None}
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        for active in list(self._active.values()):
            self._cancel_local(active, "shutdown")
        remaining = {a.task for a in self._active.values() if a.task is not None}
        if remaining:
            await asyncio.wait(remaining, timeout=SHUTDOWN_CANCEL_WAIT)
        if self._callbacks:
            await asyncio.wait(set(self._callbacks), timeout=max(0.0, deadline - loop.time()))
        for task in list(self._callbacks):
            task.cancel()

    def active_count(self) -> int:
        return len(self._active)
