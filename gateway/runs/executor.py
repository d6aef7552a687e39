"""Executing a run: its task, its events recorded in batches, its outcome, its completion callbacks.

A run is an ordinary routed stream (routes, policies, tracing apply) that runs in a task of
its own instead of the caller's request. Its events get sequence ids 1, 2, ... and are
recorded in the run store in batches; its final result or error goes into its record. The
gateway adds no time limit of its own: only the caller's timeout (``options.timeout``,
``x-timeout-ms``) and the timeouts configured on routes, agents and policies apply; the
listeners' stream limits do not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Protocol

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
    UpstreamUnavailable,
)
from gateway.model import (
    StatusCode as GatewayStatus,
)
from gateway.results import ResultCollector
from gateway.runs.active import ActiveRun
from gateway.runs.store import RunRecord, RunStatus, RunStore, StoredEvent
from gateway.runs.webhook import WebhookSender

log = logging.getLogger("agent_gateway.runs")


class AnswerView(Protocol):
    """What a run's owner may see of its events and its error (the fronts' steps view)."""

    def event(self, event: Event) -> Event: ...

    def error(self, error: GatewayError) -> GatewayError: ...


class RunExecutor:
    """Runs the runs of this gateway, each in a task of its own, and announces their completion."""

    def __init__(
        self,
        store: RunStore,
        gateway: Invoker,
        config: RunsConfig,
        webhooks: WebhookSender,
        publisher: EventPublisher | None,
        active: dict[str, ActiveRun],
    ) -> None:
        self.store = store
        self.gateway = gateway
        self.config = config
        self.webhooks = webhooks
        self.publisher = publisher
        self._active = active
        self._callbacks: set[asyncio.Task[None]] = set()

    def launch(
        self,
        active: ActiveRun,
        invocation: Invocation,
        answering: str,
        events: AsyncIterator[Event],
        view: AnswerView | None,
    ) -> None:
        """Start the recorded run in its task, in the caller's trace."""
        self._active[active.record.run_id] = active
        parent = otel_context.get_current()
        active.task = asyncio.create_task(
            self._execute(active, invocation, answering, events, parent, view), name=f"agw-run-{active.record.run_id}"
        )

    async def invoked(self, invocation: Invocation) -> AsyncIterator[Event]:
        """A unary call's reply as the events a run records (one ``message`` per reply message)."""
        # What the adapter reports before the call ends (an A2A task its agent left working) is
        # recorded as it comes, so a blocking SendMessage can answer then (TaskService.wait).
        early: asyncio.Queue[Event] = asyncio.Queue()
        invocation.record.on_answer = early.put_nowait
        call = asyncio.ensure_future(self.gateway.invoke(invocation))
        reported: asyncio.Future[Event] | None = None
        try:
            while not call.done():
                reported = asyncio.ensure_future(early.get())
                await asyncio.wait({call, reported}, return_when=asyncio.FIRST_COMPLETED)
                if reported.done():
                    yield reported.result()
                else:
                    reported.cancel()
            while not early.empty():
                yield early.get_nowait()
            result = call.result()
        finally:
            if reported is not None and not reported.done():
                reported.cancel()
            if not call.done():
                call.cancel()  # the run was cancelled: so is its call (which cancels the upstream task)
                with contextlib.suppress(asyncio.CancelledError, GatewayError):
                    await call
        for message in result.messages:
            yield Event("message", message=message)
        if result.metadata:
            # What the adapter read of the framework's status (an A2A task waiting for input...).
            yield Event("status", data=dict(result.metadata))

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

    async def close_callbacks(self, timeout: float) -> None:
        """Let completion callbacks still going finish for ``timeout`` seconds, then stop them."""
        if self._callbacks:
            await asyncio.wait(set(self._callbacks), timeout=timeout)
        for task in list(self._callbacks):
            task.cancel()
