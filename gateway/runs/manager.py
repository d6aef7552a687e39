"""Background runs, as the fronts see them: submit, status, result, events, cancel.

The parts: ``executor`` runs a run in a task of its own and records it; ``follow`` replays
and streams its events; ``fleet`` picks up cancels asked at other gateways, renews the leases
of the runs here and reports runs whose gateway died.

Cancelling cancels the run's task: each adapter's stream, abandoned, cancels
the upstream run its framework's own way (LangGraph run cancel, A2A task
cancel, closing the HTTP stream), and a workflow's steps, being awaited
inside it, are cancelled with it. A cancel asked at another gateway of the
fleet is picked up within ``runs.poll_interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncGenerator

from gateway.bus.publisher import EventPublisher
from gateway.config.schema import RunsConfig
from gateway.invoker import Invoker
from gateway.model import GatewayError, Invocation, NotFound, UpstreamUnavailable
from gateway.model import StatusCode as GatewayStatus
from gateway.runs.active import ActiveRun
from gateway.runs.executor import AnswerView, RunExecutor
from gateway.runs.fleet import FleetWatch, unless_lost
from gateway.runs.follow import follow
from gateway.runs.store import RunPage, RunRecord, RunStore, StoredEvent, check_run_id, new_run_id
from gateway.runs.webhook import WebhookSender

__all__ = ["AnswerView", "RunManager", "RunNotFinished"]

# How long an explicit cancel waits for the run to record its cancelled status (here, or at
# another gateway of the fleet for the A2A task service).
CANCEL_WAIT = 10.0
# The same at shutdown, past the drain deadline (a run not recorded by then is reported
# failed by the fleet once its lease lapses).
SHUTDOWN_CANCEL_WAIT = 1.0


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
        self.gateway_id = uuid.uuid4().hex
        self._active: dict[str, ActiveRun] = {}
        self._executor = RunExecutor(store, gateway, config, webhooks, publisher, self._active)
        self._fleet = FleetWatch(store, config, self._active)
        self._poller: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        self._poller = asyncio.create_task(self._fleet.run(), name="agw-runs-cancels")

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
            answering, events = invocation.agent, self._executor.invoked(invocation)
        await self.store.save(record)
        self._executor.launch(ActiveRun(record), invocation, answering, events, view)
        return record

    # -- queries -------------------------------------------------------------

    async def get(self, run_id: str, owner: str) -> RunRecord:
        """The run, for its owner only (others learn nothing, not even that it exists)."""
        check_run_id(run_id)
        active = self._active.get(run_id)
        record = active.record if active is not None else await self.store.get(run_id)
        if record is None or record.owner != owner:
            raise NotFound(f"no run {run_id!r}: it never existed, expired, or belongs to someone else")
        if active is None:
            record = unless_lost(record, self.config.lease)
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
        active.cancel("client")
        if active.task is not None:
            await asyncio.wait({active.task}, timeout=CANCEL_WAIT)
        return await self.get(run_id, owner)

    async def follow(self, run_id: str, owner: str, after: int = 0) -> AsyncGenerator[StoredEvent | RunRecord, None]:
        """The run's events with sequence ids above ``after``, live until it ends, then its final record."""
        await self.get(run_id, owner)
        async for item in follow(self.store, self._active, self.config, run_id, after):
            yield item

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
            active.cancel("shutdown")
        remaining = {a.task for a in self._active.values() if a.task is not None}
        if remaining:
            await asyncio.wait(remaining, timeout=SHUTDOWN_CANCEL_WAIT)
        await self._executor.close_callbacks(max(0.0, deadline - loop.time()))
