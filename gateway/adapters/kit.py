"""The adapter kit: the small mechanics several adapters need, written once.

Which gateway id names the conversation upstream, the call's ids as run metadata, a
rejection refined into NOT_FOUND, the JSON of one server-sent event, and the cancel
request of an abandoned run (sent through the agent's own transport, so its TLS
settings and credentials hold for the cancel as for the call).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

from gateway.model import Attempt, Context, DataPart, Message, UpstreamError, UpstreamNotFound, UpstreamRejected
from gateway.protocols.sse import SseEvent
from gateway.transport import HttpTransport

# Which gateway id becomes the upstream's conversation (thread, memory, context); "none": stateless.
ThreadFrom = Literal["thread_or_session", "thread", "session", "none"]
# The call's ids an upstream may keep with a run, in this order.
CALL_IDS = ("session_id", "thread_id", "user_id", "request_id")
# The header carrying the caller's remaining time: a cancel runs on a budget of its own.
_DEADLINE_HEADER = "x-timeout-ms"


def conversation_id(context: Context, source: ThreadFrom = "thread_or_session") -> str:
    """The gateway id naming this call's conversation ("" when the call has none: stateless)."""
    if source == "thread_or_session":
        return context.thread_id or context.session_id
    if source == "thread":
        return context.thread_id
    if source == "session":
        return context.session_id
    return ""


def upstream_uuid(namespace: uuid.UUID, agent: str, gateway_id: str) -> str:
    """A stable UUID for ``gateway_id`` at ``agent``: every gateway derives the same one."""
    return str(uuid.uuid5(namespace, f"{agent}:{gateway_id}"))


def call_ids(context: Context, names: tuple[str, ...] = CALL_IDS) -> dict[str, str]:
    """The call's ids among ``names`` that are set, for the upstream's run metadata."""
    return {name: value for name in names if (value := getattr(context, name))}


def grpc_metadata(
    call: Attempt, static: Mapping[str, str] | None = None, *, deadline_header: bool = True
) -> tuple[tuple[str, str], ...]:
    """gRPC metadata (lower-case keys) from ``static`` and the call's headers; without the
    deadline header where the gRPC deadline carries it."""
    merged = {k.lower(): v for k, v in (static or {}).items()}
    merged.update((k.lower(), v) for k, v in call.headers.items())
    if not deadline_header:
        merged.pop(_DEADLINE_HEADER, None)
    return tuple(merged.items())


def structured_input(message: Message, text_key: str) -> dict[str, Any] | None:
    """The message's first data part that is an object, else its text under ``text_key``; None for neither."""
    for part in message.parts:
        if isinstance(part, DataPart) and isinstance(part.data, dict):
            return dict(part.data)
    return {text_key: message.text} if message.text else None


def refined(exc: UpstreamRejected, kind: type[UpstreamRejected], message: str) -> UpstreamRejected:
    """``exc`` said better: the same agent, details and upstream body under a clearer message."""
    better = kind(message, agent=exc.agent, details=exc.details)
    better.upstream_body = exc.upstream_body
    return better


@contextlib.contextmanager
def not_found_when(matches: Callable[[UpstreamRejected], bool], message: str) -> Iterator[None]:
    """A rejection ``matches`` recognises (a 404, a framework's "no such assistant") becomes
    :class:`~gateway.model.UpstreamNotFound` with ``message``, which says what to check."""
    try:
        yield
    except UpstreamRejected as exc:
        if not isinstance(exc, UpstreamNotFound) and matches(exc):
            raise refined(exc, UpstreamNotFound, message) from exc
        raise


def upstream_status(exc: UpstreamRejected) -> Any:
    """The HTTP status the agent answered (None when the rejection did not come from one)."""
    return exc.details.get("upstream_status")


def sse_json(event: SseEvent, agent: str, stream: str) -> Any:
    """The JSON of one event's data; malformed JSON fails the ``stream`` (named in the error)."""
    try:
        return json.loads(event.data)
    except json.JSONDecodeError:
        raise UpstreamError(f"the {stream} stream sent malformed JSON", agent=agent) from None


def json_or_none(text: str) -> Any:
    """The JSON of ``text``, None when it is not JSON (for agents that may send plain text)."""
    try:
        # One JSON value filling the text (what every event sends) needs only the scanner;
        # anything else (surrounding space, plain text, an error) takes json.loads' whole path.
        value, end = _scan(text, 0)
        if end == len(text):
            return value
    except (StopIteration, json.JSONDecodeError):
        pass
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


# The stdlib decoder's scanner (undeclared in typeshed): a value from an index, with where it ended.
_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def without_deadline(call: Attempt) -> Attempt:
    """``call`` with no deadline (and no deadline header): a cancel must go out even when the
    caller's time is spent; ``Adapter.cancel_abandoned`` bounds it instead."""
    context = dataclasses.replace(call.context, deadline=None)
    invocation = dataclasses.replace(call.invocation, context=context)
    headers = {k: v for k, v in call.headers.items() if k.lower() != _DEADLINE_HEADER}
    return Attempt(invocation, headers)


async def send_cancel(transport: HttpTransport, call: Attempt, path: str, body: Any = None) -> None:
    """POST the cancel of an abandoned run through ``transport``: the agent's headers, TLS
    settings (CA, client certificate, server name) and error mapping, free of the call's deadline."""
    await transport.request_json(without_deadline(call), "POST", path, body)
