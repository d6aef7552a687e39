"""The core operations of A2A 1.0 (spec §3.1), once for every binding.

Each operation takes its request as A2A 1.0 JSON (camelCase or the proto's
snake_case field names, as protobuf JSON parsing accepts) and answers A2A 1.0
JSON; a binding (JSON-RPC in :mod:`gateway.server.a2a`) only carries them and
renders them for 0.3 clients. Every operation runs for one :class:`Caller`:
the agent of the endpoint, authorized for the caller before anything else,
and the caller's identity, which owns the tasks it creates.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway import wire
from gateway.model import Context, InvalidRequest, Message, Role
from gateway.pipeline import Gateway
from gateway.protocols.a2a import gateway_part, message_json, parse_timestamp, state_from_v03
from gateway.security.guard import ListenerGuard
from gateway.security.identity import Identity
from gateway.server.inbound import inbound_call, server_span
from gateway.tasks.errors import InvalidParams, UnsupportedOperation
from gateway.tasks.service import TaskService, status_update, task_json
from gateway.tasks.store import MAX_PAGE_SIZE, STATES, TaskQuery, TaskRecord

DEFAULT_PAGE_SIZE = 50


@dataclass(frozen=True, slots=True)
class Caller:
    """Who calls which agent: the identity (owner of its tasks) and the believed headers."""

    agent: str
    identity: Identity
    headers: Mapping[str, str]
    guard: ListenerGuard

    @property
    def owner(self) -> str:
        return self.identity.name


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def fields(params: Any, allowed: tuple[str, ...], where: str = "params") -> dict[str, Any]:
    """``params`` as an object of known fields (snake_case names taken as camelCase)."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise InvalidParams(f"{where} must be an object")
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = _camel(key) if isinstance(key, str) else key
        if name not in allowed:
            raise InvalidParams(f"{where} has an unknown field {str(key)[:60]!r} (known: {', '.join(allowed)})")
        out[name] = value
    return out


def _string(data: Mapping[str, Any], name: str, where: str, *, required: bool = False) -> str:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise InvalidParams(f"{where}.{name} is required")
        return ""
    if not isinstance(value, str):
        raise InvalidParams(f"{where}.{name} must be a string")
    return value


def _count(data: Mapping[str, Any], name: str, where: str, low: int = 0, high: int | None = None) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InvalidParams(f"{where}.{name} must be an integer {bounds}")
    return value


def _flag(data: Mapping[str, Any], name: str, where: str) -> bool | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise InvalidParams(f"{where}.{name} must be true or false")
    return value


_MESSAGE_FIELDS = (
    "messageId",
    "contextId",
    "taskId",
    "role",
    "parts",
    "metadata",
    "extensions",
    "referenceTaskIds",
    "kind",
)
_ROLES = {"ROLE_USER": Role.USER, "user": Role.USER, "ROLE_AGENT": Role.AGENT, "agent": Role.AGENT}


def _message(raw: Any) -> tuple[dict[str, Any], Message, str]:
    """The request's message (validated, as 1.0 JSON), the gateway's message made of it,
    and the task it names (empty for a new task)."""
    data = fields(raw, _MESSAGE_FIELDS, "params.message")
    if not data:
        raise InvalidParams("params.message is required")
    message_id = _string(data, "messageId", "params.message", required=True)
    role = _ROLES.get(str(data.get("role")))
    if role is None:
        raise InvalidParams("params.message.role must be ROLE_USER or ROLE_AGENT")
    raw_parts = data.get("parts")
    if not isinstance(raw_parts, list) or not raw_parts:
        raise InvalidParams("params.message.parts must be a non-empty list of parts")
    parts = []
    for index, item in enumerate(raw_parts):
        part = gateway_part(item) if isinstance(item, dict) else None
        if part is None:
            raise InvalidParams(f"params.message.parts[{index}] is not a text, data, url or raw part")
        parts.append(part)
    raw_metadata = data.get("metadata")
    metadata: dict[str, Any] = raw_metadata if isinstance(raw_metadata, dict) else {}
    user = Message(Role.USER, tuple(parts), metadata, message_id)
    canonical = message_json(user, _string(data, "contextId", "params.message"), "")
    for extra in ("extensions", "referenceTaskIds"):
        if isinstance(data.get(extra), list):
            canonical[extra] = data[extra]
    return canonical, user, _string(data, "taskId", "params.message")


class TaskFrames(AsyncIterator[dict[str, Any]]):
    """The frames of a streaming operation, and ``cancel`` for the turn whose call the stream is
    (SendStreamingMessage's; a subscriber only follows, so it has none)."""

    def __init__(
        self, frames: AsyncGenerator[dict[str, Any], None], cancel: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self._frames = frames
        self.cancel = cancel

    def __anext__(self) -> Awaitable[dict[str, Any]]:
        return self._frames.__anext__()

    async def aclose(self) -> None:
        await self._frames.aclose()


class A2AOperations:
    """SendMessage, SendStreamingMessage, GetTask, ListTasks, CancelTask, SubscribeToTask,
    the push-notification configs and GetExtendedAgentCard, over the task service."""

    def __init__(self, gateway: Gateway, tasks: TaskService) -> None:
        self.gateway = gateway
        self.tasks = tasks

    @property
    def push_notifications(self) -> bool:
        return self.tasks.push

    # -- sending ---------------------------------------------------------------

    async def _start(self, caller: Caller, params: Any, streaming: bool) -> tuple[TaskRecord, dict[str, Any]]:
        data = fields(params, ("tenant", "message", "configuration", "metadata"))
        canonical, user, task_id = _message(data.get("message"))
        configuration = fields(
            data.get("configuration"),
            (
                "acceptedOutputModes",
                "taskPushNotificationConfig",
                "pushNotificationConfig",
                "historyLength",
                "returnImmediately",
                "blocking",
            ),
            "params.configuration",
        )
        _count(configuration, "historyLength", "params.configuration")
        context_id = str(canonical.get("contextId") or "")
        existing = None
        if task_id:
            existing = await self.tasks.owned(task_id, caller.owner, caller.agent)
            if context_id and context_id != existing.context_id:
                raise InvalidParams(f"params.message.contextId does not match task {task_id}'s context")
            context_id = existing.context_id
        context_id = context_id or str(uuid.uuid4())
        request = wire.InvokeRequestData(
            agent=caller.agent,
            messages=(user,),
            context=Context(session_id=caller.headers.get("x-session-id") or context_id),
            params={},
            idempotent=True,
            timeout=None,
        )
        try:
            inbound = inbound_call(request, dict(caller.headers), caller.guard, caller.identity)
        except InvalidRequest as exc:
            raise InvalidParams(exc.message) from None
        push = configuration.get("taskPushNotificationConfig") or configuration.get("pushNotificationConfig")
        if push is not None:
            push = fields(push, _PUSH_FIELDS, "params.configuration.pushConfig")
        invocation = inbound.invocation
        caller.guard.authorize(caller.identity, invocation.agent)
        method = "SendStreamingMessage" if streaming else "SendMessage"
        # The task's run is started inside the call's SERVER span, so it continues the caller's trace.
        with server_span(
            self.gateway.tracer,
            f"A2A {method} {caller.agent}",
            inbound.parent,
            invocation.context,
            {"rpc.method": method},
        ):
            record = await self.tasks.start(
                invocation, caller.owner, context_id, canonical, existing, streaming=streaming, push_config=push
            )
        return record, configuration

    async def send(self, caller: Caller, params: Any) -> dict[str, Any]:
        """SendMessage: blocks until the task ends or waits for input, unless
        ``configuration.returnImmediately`` (0.3: ``blocking: false``)."""
        record, configuration = await self._start(caller, params, False)
        immediate = configuration.get("returnImmediately") is True or configuration.get("blocking") is False
        if not immediate:
            record = await self.tasks.wait(record)
        return {"task": task_json(record, configuration.get("historyLength"))}

    async def stream(self, caller: Caller, params: Any) -> TaskFrames:
        """SendStreamingMessage: the task, its working status, its artifact chunks, its end.
        The turn is started before the first frame, so a bad request fails as a whole."""
        record, _ = await self._start(caller, params, True)

        async def cancel() -> None:
            await self.tasks.runs.cancel(record.run_id, record.owner)

        return TaskFrames(self._stream_frames(record), cancel)

    async def _stream_frames(self, record: TaskRecord) -> AsyncGenerator[dict[str, Any], None]:
        yield {"task": task_json(record)}
        yield status_update(dataclasses.replace(record, state="TASK_STATE_WORKING"))
        async for frame in self.tasks.frames(record):
            yield frame

    # -- tasks -----------------------------------------------------------------

    async def get_task(self, caller: Caller, params: Any) -> dict[str, Any]:
        data = fields(params, ("tenant", "id", "historyLength", "metadata"))
        task_id = _string(data, "id", "params", required=True)
        history = _count(data, "historyLength", "params")
        return task_json(await self.tasks.owned(task_id, caller.owner, caller.agent), history)

    async def list_tasks(self, caller: Caller, params: Any) -> dict[str, Any]:
        data = fields(
            params,
            (
                "tenant",
                "contextId",
                "status",
                "pageSize",
                "pageToken",
                "historyLength",
                "statusTimestampAfter",
                "includeArtifacts",
            ),
        )
        state = _string(data, "status", "params")
        if state in ("TASK_STATE_UNSPECIFIED", "UNRECOGNIZED"):
            # No filter, as clients that write every field say it: the proto's default, and what
            # @a2a-js/sdk (ts-proto) writes for an unset enum.
            state = ""
        if state:
            state = state_from_v03(state)
            if state not in STATES:
                raise InvalidParams(f"params.status {state[:40]!r} is not one of {', '.join(STATES)}")
        page_size = _count(data, "pageSize", "params", 1, MAX_PAGE_SIZE) or DEFAULT_PAGE_SIZE
        history = _count(data, "historyLength", "params")
        after = None
        if (stamp := data.get("statusTimestampAfter")) is not None:
            try:
                after = parse_timestamp(stamp) if isinstance(stamp, str) else None
            except ValueError:
                after = None
            if after is None or after < 0:
                raise InvalidParams("params.statusTimestampAfter must be an ISO 8601 timestamp")
        artifacts = _flag(data, "includeArtifacts", "params") is True
        query = TaskQuery(
            owner=caller.owner,
            agent=caller.agent,
            context_id=_string(data, "contextId", "params"),
            state=state,
            updated_after=after,
            page_size=page_size,
            cursor=_string(data, "pageToken", "params"),
        )
        try:
            page = await self.tasks.list_tasks(query)
        except InvalidRequest as exc:
            raise InvalidParams(exc.message) from None
        return {
            "tasks": [task_json(r, history, artifacts=artifacts) for r in page.tasks],
            "nextPageToken": page.next_cursor,
            # "The page size used for this response": how many tasks it holds.
            "pageSize": len(page.tasks),
            "totalSize": page.total,
        }

    async def cancel_task(self, caller: Caller, params: Any) -> dict[str, Any]:
        data = fields(params, ("tenant", "id", "metadata"))
        task_id = _string(data, "id", "params", required=True)
        return task_json(await self.tasks.cancel(task_id, caller.owner, caller.agent))

    async def subscribe(self, caller: Caller, params: Any) -> TaskFrames:
        """SubscribeToTask: the task as it stands, then its current turn's frames from the
        turn's first event (replayed from the run's event log), then its end."""
        data = fields(params, ("tenant", "id", "metadata"))
        task_id = _string(data, "id", "params", required=True)
        record = await self.tasks.owned(task_id, caller.owner, caller.agent)
        if record.finished:
            raise UnsupportedOperation(f"task {task_id} is {record.state}: there is nothing left to follow")
        return TaskFrames(self._subscribe_frames(record))

    async def _subscribe_frames(self, record: TaskRecord) -> AsyncGenerator[dict[str, Any], None]:
        yield {"task": task_json(record)}
        async for frame in self.tasks.frames(record):
            yield frame

    # -- push notification configs ---------------------------------------------

    async def _push_task(self, caller: Caller, data: Mapping[str, Any]) -> TaskRecord:
        self.tasks.check_push()
        task_id = _string(data, "taskId", "params", required=True)
        return await self.tasks.owned(task_id, caller.owner, caller.agent)

    async def create_push_config(self, caller: Caller, params: Any) -> dict[str, Any]:
        data = fields(params, (*_PUSH_FIELDS, "pushNotificationConfig", "config"))
        record = await self._push_task(caller, data)
        # 0.3 (and early 1.0 drafts) nest the config; 1.0 has it flat.
        nested = data.get("pushNotificationConfig") or data.get("config")
        config = fields(nested, _PUSH_FIELDS, "params.pushNotificationConfig") if nested is not None else data
        return await self.tasks.set_push_config(record, {k: v for k, v in config.items() if k != "taskId"})

    async def get_push_config(self, caller: Caller, params: Any) -> dict[str, Any]:
        data = fields(params, ("tenant", "taskId", "id", "pushNotificationConfigId"))
        record = await self._push_task(caller, data)
        config_id = _string(data, "id", "params") or _string(data, "pushNotificationConfigId", "params")
        if not config_id:
            configs = await self.tasks.push_configs(record)
            if configs:
                return configs[0]
            raise InvalidParams("params.id (the config's id) is required")
        return await self.tasks.push_config(record, config_id)

    async def list_push_configs(self, caller: Caller, params: Any) -> dict[str, Any]:
        data = fields(params, ("tenant", "taskId", "pageSize", "pageToken"))
        record = await self._push_task(caller, data)
        return {"configs": await self.tasks.push_configs(record), "nextPageToken": ""}

    async def delete_push_config(self, caller: Caller, params: Any) -> None:
        data = fields(params, ("tenant", "taskId", "id", "pushNotificationConfigId"))
        record = await self._push_task(caller, data)
        config_id = _string(data, "id", "params") or _string(data, "pushNotificationConfigId", "params", required=True)
        await self.tasks.delete_push_config(record, config_id)


_PUSH_FIELDS = ("tenant", "id", "taskId", "url", "token", "authentication")
