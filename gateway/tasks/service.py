"""A2A tasks over background runs: create, continue, wait, follow, cancel, list, push.

Each turn of a task (the message that created it, each message continuing
it) is one background run (:class:`~gateway.runs.manager.RunManager`), so a
task gets from the runs everything they have: routes, policies and tracing,
a durable event log to follow (and re-attach to) from any gateway of the
fleet, cancellation the framework's own way wherever the run executes.

The task record keeps what A2A shows: status, history, artifacts. It is
brought up to date from its current run whenever it is read (:meth:`settle`),
so any gateway answers for any task; the gateway executing a turn settles the
task as soon as the run ends and delivers its push notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from gateway import wire
from gateway.model import JSON, GatewayError, Invocation, Message, NotFound, Role, TextPart
from gateway.protocols.a2a import agent_text, artifact_json, message_json, part_json, timestamp
from gateway.runs.manager import CANCEL_WAIT, RunManager
from gateway.runs.messages import event_pb, result_pb
from gateway.runs.store import RunRecord, RunStatus, StoredEvent
from gateway.runs.webhook import WebhookSender
from gateway.tasks.errors import (
    InvalidParams,
    PushNotificationNotSupported,
    TaskNotCancelable,
    TaskNotFound,
    UnsupportedOperation,
)
from gateway.tasks.store import (
    AUTH_REQUIRED,
    CANCELED,
    COMPLETED,
    FAILED,
    INPUT_REQUIRED,
    INTERRUPTED,
    SUBMITTED,
    WORKING,
    TaskPage,
    TaskQuery,
    TaskRecord,
    TaskStore,
    check_task_id,
    new_task_id,
)

log = logging.getLogger("agent_gateway.a2a")

# How many of a turn's last events are searched for the status that says it waits for input.
_STATUS_LOOKBACK = 20
_WAITING = {"input-required": INPUT_REQUIRED, "auth-required": AUTH_REQUIRED}
NOTIFICATION_TOKEN_HEADER = "x-a2a-notification-token"


def task_json(record: TaskRecord, history_length: int | None = None, *, artifacts: bool = True) -> dict[str, Any]:
    """The A2A 1.0 ``Task``; ``history_length`` keeps the newest messages (0: none)."""
    status: dict[str, Any] = {"state": record.state, "timestamp": timestamp(record.updated_at)}
    if record.status_message is not None:
        status["message"] = record.status_message
    out: dict[str, Any] = {"id": record.task_id, "contextId": record.context_id, "status": status}
    history = list(record.history)
    if history_length is not None:
        history = history[-history_length:] if history_length > 0 else []
    if history:
        out["history"] = history
    if artifacts:
        out["artifacts"] = list(record.artifacts)
    if record.metadata:
        out["metadata"] = record.metadata
    return out


def status_update(record: TaskRecord) -> dict[str, Any]:
    """A 1.0 ``statusUpdate`` stream frame of the record's status."""
    task = task_json(record, 0, artifacts=False)
    return {"statusUpdate": {"taskId": record.task_id, "contextId": record.context_id, "status": task["status"]}}


def _answered_early(stored: StoredEvent) -> bool:
    """The status event an adapter reports when its upstream answered with the task still working."""
    event = wire.event_from_pb(event_pb(stored))
    return event.type == "status" and isinstance(event.data, dict) and event.data.get("answered") is True


class TaskService:
    """The A2A tasks of one gateway (and, through the stores, of its fleet)."""

    def __init__(self, store: TaskStore, runs: RunManager, webhooks: WebhookSender, push: bool) -> None:
        self.store = store
        self.runs = runs
        self.webhooks = webhooks
        # Push notifications need somewhere they may go: runs.webhooks.allowed_prefixes.
        self.push = push
        self._watchers: set[asyncio.Task[None]] = set()

    # -- reading ---------------------------------------------------------------

    async def owned(self, task_id: str, owner: str, agent: str) -> TaskRecord:
        """The caller's task on this agent, up to date; TaskNotFound for any other."""
        record = await self.store.get(task_id) if check_task_id(task_id) else None
        if record is None or record.owner != owner or record.agent != agent:
            raise TaskNotFound(task_id)
        return await self.settle(record)

    async def settle(self, record: TaskRecord) -> TaskRecord:
        """Bring a task up to date with the run of its current turn (and store it if it moved)."""
        if record.finished or record.state in INTERRUPTED or not record.run_id:
            return record
        try:
            run: RunRecord | None = await self.runs.get(record.run_id, record.owner)
        except NotFound:
            run = None
        if run is None:
            record = record.updated(
                state=FAILED,
                status_message=agent_text("the run of this task expired", record.context_id, record.task_id),
            )
        elif not run.status.finished:
            state = SUBMITTED if run.status == RunStatus.QUEUED else WORKING
            if state == record.state:
                return record
            record = record.updated(state=state)
        else:
            record = self._finished(record, run, await self._interruption(run))
        await self.store.save(record)
        return record

    async def _interruption(self, run: RunRecord) -> str | None:
        """INPUT_REQUIRED or AUTH_REQUIRED when the turn's last status event says the agent
        waits for the client (an A2A upstream's task state, as its adapter reports it)."""
        if run.status != RunStatus.SUCCEEDED:
            return None
        recent = await self.runs.store.events(run.run_id, max(0, run.last_sequence - _STATUS_LOOKBACK))
        for stored in reversed(recent):
            event = wire.event_from_pb(event_pb(stored))
            if event.type != "status" or not isinstance(event.data, dict):
                continue
            state = str(event.data.get("state") or event.data.get("a2a_state") or "")
            return _WAITING.get(state.lower().removeprefix("task_state_").replace("_", "-"))
        return None

    def _finished(self, record: TaskRecord, run: RunRecord, interrupted: str | None = None) -> TaskRecord:
        """The task once its turn's run ended. Deterministic (ids and times come from the run),
        so gateways settling the same task at once write the same record."""
        turn = record.turns
        settled = dataclasses.replace(record, updated_at=run.finished_at or run.updated_at, status_message=None)
        if run.status == RunStatus.SUCCEEDED:
            result = wire.result_from_pb(result_pb(run))
            artifacts = tuple(
                artifact_json(f"{record.task_id}-{turn}-{i}", [part_json(p) for p in m.parts])
                for i, m in enumerate(result.messages)
            )
            parts = tuple(p for m in result.messages for p in m.parts)
            reply = message_json(
                Message(Role.AGENT, parts, message_id=f"{record.task_id}-{turn}-reply"),
                record.context_id,
                record.task_id,
            )
            if interrupted is not None:
                # The agent asks something: its reply is the status message, the task waits for the answer.
                return dataclasses.replace(
                    settled, state=interrupted, status_message=reply, history=(*record.history, reply)
                )
            return dataclasses.replace(
                settled,
                state=COMPLETED,
                artifacts=(*record.artifacts, *artifacts),
                history=(*record.history, reply),
            )
        if run.status == RunStatus.CANCELLED:
            return dataclasses.replace(settled, state=CANCELED)
        error = dict(run.error or {})
        reason = Message(
            Role.AGENT,
            (TextPart(str(error.get("message") or "the agent failed")),),
            message_id=f"{record.task_id}-{turn}-error",
        )
        return dataclasses.replace(
            settled, state=FAILED, status_message=message_json(reason, record.context_id, record.task_id)
        )

    async def list_tasks(self, query: TaskQuery) -> TaskPage:
        page = await self.store.list(query)
        tasks = [await self.settle(r) for r in page.tasks]
        return TaskPage(tuple(tasks), page.next_cursor, page.total)

    # -- sending ---------------------------------------------------------------

    async def start(
        self,
        invocation: Invocation,
        owner: str,
        context_id: str,
        message: JSON,
        existing: TaskRecord | None = None,
        *,
        streaming: bool = True,
        push_config: Mapping[str, Any] | None = None,
    ) -> TaskRecord:
        """Run one turn: a new task, or the next turn of ``existing`` (waiting for input).
        ``streaming`` says whether the agent is called through its stream or its unary call;
        ``push_config`` is the SendMessage's own push-notification config."""
        if existing is not None:
            if existing.finished:
                raise UnsupportedOperation(
                    f"task {existing.task_id} is {existing.state}: it takes no more messages"
                    " (send a new message with its contextId to go on in the same conversation)"
                )
            if existing.state not in INTERRUPTED:
                raise UnsupportedOperation(
                    f"task {existing.task_id} is still {existing.state}: wait for it, or cancel it"
                )
        # Checked before the turn runs, so a refused config starts nothing.
        push = self._push_entry(push_config) if push_config is not None else None
        run = await self.runs.submit(invocation, owner, streaming=streaming)
        if existing is None:
            record = TaskRecord(
                task_id=new_task_id(),
                owner=owner,
                agent=invocation.agent,
                context_id=context_id,
            )
        else:
            record = existing.updated(state=SUBMITTED, status_message=None)
        if isinstance(message, dict):
            message = {**message, "taskId": record.task_id, "contextId": record.context_id}
        record = record.updated(history=(*record.history, message), run_id=run.run_id, turns=record.turns + 1)
        await self.store.save(record)
        if push is not None:
            # Stored before the watcher exists: a turn that ends at once still notifies it.
            await self._save_push(record, push)
        watcher = asyncio.create_task(self._watch(record), name=f"agw-a2a-task-{record.task_id}")
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        return record

    async def _watch(self, record: TaskRecord) -> None:
        """Push the task to its webhooks as the turn starts (a task update, spec §4.3.3, as the
        stream's first frame is), settle it as soon as the turn's run ends, push it again."""
        try:
            await self._notify(record)
            async for _ in self.runs.follow(record.run_id, record.owner):
                pass
            settled = await self.settle(record)
            await self._notify(settled)
        except GatewayError as exc:
            log.warning("task %s could not be settled: %s", record.task_id, exc)

    async def wait(self, record: TaskRecord) -> TaskRecord:
        """The task once its current turn ended (blocking SendMessage), or once the upstream answered
        its own blocking call with the task still working (an A2A agent whose executor returned):
        answered working, as the agent itself would; the run follows the task on to its end."""
        async with contextlib.aclosing(self.runs.follow(record.run_id, record.owner)) as items:
            async for item in items:
                if isinstance(item, StoredEvent) and _answered_early(item):
                    break
        current = await self.store.get(record.task_id)
        return await self.settle(current or record)

    async def frames(self, record: TaskRecord) -> AsyncIterator[dict[str, Any]]:
        """A2A 1.0 stream frames of the current turn from its first event (a re-attached
        follower loses nothing), then the final status."""
        chunks = 0
        async for item in self.runs.follow(record.run_id, record.owner):
            if not isinstance(item, StoredEvent):
                break
            event = wire.event_from_pb(event_pb(item))
            if event.message is None or event.type not in ("delta", "message"):
                continue
            artifact = artifact_json(f"{record.task_id}-{record.turns}-0", [part_json(p) for p in event.message.parts])
            update = {
                "taskId": record.task_id,
                "contextId": record.context_id,
                "artifact": artifact,
                "append": chunks > 0,
                "lastChunk": False,
            }
            chunks += 1
            yield {"artifactUpdate": update}
        current = await self.store.get(record.task_id)
        yield status_update(await self.settle(current or record))

    # -- cancelling ------------------------------------------------------------

    async def cancel(self, task_id: str, owner: str, agent: str) -> TaskRecord:
        record = await self.owned(task_id, owner, agent)
        if record.finished:
            raise TaskNotCancelable(f"task {task_id} is {record.state}: only an unfinished task can be cancelled")
        if record.state in INTERRUPTED:
            record = record.updated(state=CANCELED)
            await self.store.save(record)
            return record
        await self.runs.cancel(record.run_id, owner)
        deadline = time.monotonic() + CANCEL_WAIT
        record = await self.settle(record)
        while not record.finished and time.monotonic() < deadline:
            # The run executes on another gateway: it records the cancel within runs.poll_interval.
            await asyncio.sleep(self.runs.config.poll_interval)
            record = await self.settle(record)
        if record.finished and record.state != CANCELED:
            raise TaskNotCancelable(f"task {task_id} ended {record.state} before it could be cancelled")
        return record

    # -- push notifications ----------------------------------------------------

    def check_push(self) -> None:
        if not self.push:
            raise PushNotificationNotSupported(
                "this gateway sends no push notifications: list the allowed URLs in runs.webhooks.allowed_prefixes"
            )

    async def set_push_config(self, record: TaskRecord, config: Mapping[str, Any]) -> dict[str, Any]:
        return await self._save_push(record, self._push_entry(config))

    def _push_entry(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The config as stored (without its task), once the URL policy allows it."""
        self.check_push()
        url = config.get("url")
        if not isinstance(url, str) or not url:
            raise InvalidParams("a push notification config needs a 'url'")
        self.webhooks.check_url(url)
        entry: dict[str, Any] = {"id": str(config.get("id") or uuid.uuid4()), "url": url}
        if isinstance(config.get("token"), str) and config["token"]:
            entry["token"] = config["token"]
        authentication = config.get("authentication")
        if isinstance(authentication, dict):
            entry["authentication"] = {k: v for k, v in authentication.items() if k in ("scheme", "credentials")}
        return entry

    async def _save_push(self, record: TaskRecord, entry: Mapping[str, Any]) -> dict[str, Any]:
        stored = {"id": entry["id"], "taskId": record.task_id, **{k: v for k, v in entry.items() if k != "id"}}
        await self.store.save_push_config(record.task_id, str(entry["id"]), stored)
        return stored

    async def push_configs(self, record: TaskRecord) -> list[dict[str, Any]]:
        self.check_push()
        return [dict(c) for _, c in await self.store.push_configs(record.task_id) if isinstance(c, dict)]

    async def push_config(self, record: TaskRecord, config_id: str) -> dict[str, Any]:
        for config in await self.push_configs(record):
            if config.get("id") == config_id:
                return config
        raise TaskNotFound(f"{record.task_id}/pushNotificationConfigs/{config_id}")

    async def delete_push_config(self, record: TaskRecord, config_id: str) -> None:
        self.check_push()
        await self.store.delete_push_config(record.task_id, config_id)

    async def _notify(self, record: TaskRecord) -> None:
        if not self.push:
            return
        for _, config in await self.store.push_configs(record.task_id):
            if not isinstance(config, dict):
                continue
            headers = {"content-type": "application/a2a+json"}
            if config.get("token"):
                headers[NOTIFICATION_TOKEN_HEADER] = str(config["token"])
            authentication = config.get("authentication")
            if isinstance(authentication, dict) and authentication.get("scheme"):
                headers["authorization"] = f"{authentication['scheme']} {authentication.get('credentials', '')}".strip()
            payload: dict[str, JSON] = {"task": task_json(record)}
            # One id per turn and state: a receiver deduplicating by it keeps the turn's start and end.
            state = record.state.removeprefix("TASK_STATE_").lower()
            delivery = f"{record.task_id}-{record.turns}-{state}-{config.get('id')}"
            await self.webhooks.deliver(str(config["url"]), payload, delivery, headers)

    async def aclose(self) -> None:
        """Let the watchers finish (the runs end first), then stop those left."""
        if self._watchers:
            await asyncio.wait(set(self._watchers), timeout=CANCEL_WAIT)
        for watcher in list(self._watchers):
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
