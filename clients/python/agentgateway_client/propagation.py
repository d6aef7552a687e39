"""The context a call carries: read from the request the agent serves, written onto each call.

The one definition of the context headers: W3C ``traceparent``, ``tracestate`` and ``baggage``
through OpenTelemetry's propagators, the session, thread, user and request ids and the remaining
deadline in plain headers. The gateway (``gateway.propagation``) reads and writes them with these
names and checks and writes them with :func:`inject_headers`. Keys are lower-case, so a carrier is
gRPC metadata as it is. No I/O here.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import Callable, Mapping, MutableMapping

from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import propagate

from agentgateway_client.model import ClientError, Context, StatusCode

__all__ = [
    "IDEMPOTENCY_KEY",
    "ID_BAGGAGE",
    "ID_HEADERS",
    "REQUEST_ID",
    "SESSION_ID",
    "THREAD_ID",
    "TIMEOUT_MS",
    "USER_ID",
    "Context",
    "check_id",
    "inbound_context",
    "inject_headers",
    "parse_timeout_ms",
]

SESSION_ID = "x-session-id"
THREAD_ID = "x-thread-id"
USER_ID = "x-user-id"
REQUEST_ID = "x-request-id"
# Remaining time budget in milliseconds when the request was sent.
TIMEOUT_MS = "x-timeout-ms"
IDEMPOTENCY_KEY = "idempotency-key"

ID_HEADERS = (SESSION_ID, THREAD_ID, USER_ID, REQUEST_ID)
# Baggage entries carrying the session, thread and user ids (OpenTelemetry attribute names).
# Outbound they are always the call's own values, or absent; an inbound entry under one of these
# names is dropped where the context is built, so no hop takes it for what the sender vouched for.
ID_BAGGAGE = ("session.id", "gen_ai.conversation.id", "enduser.id")
_MAX_ID_LENGTH = 256
# Ids travel on as HTTP headers and gRPC metadata: visible ASCII (and inner spaces) only.
_HEADER_SAFE = re.compile(r"[\x20-\x7e]*")


def check_id(value: str, what: str, invalid: Callable[[str], Exception]) -> str:
    """An id from a caller, stripped; ``invalid(why)`` is raised unless it is at most 256
    printable ASCII characters, so it is safe as a header (``what`` names it in the message)."""
    value = value.strip()
    if len(value) > _MAX_ID_LENGTH or not _HEADER_SAFE.fullmatch(value):
        raise invalid(
            f"{what} must be at most {_MAX_ID_LENGTH} printable ASCII characters "
            "(no control characters such as CR or LF)"
        )
    return value


def parse_timeout_ms(value: str, invalid: Callable[[str], Exception]) -> float:
    """The seconds an ``x-timeout-ms`` header gives; ``invalid(why)`` is raised when it is not a
    non-negative number."""
    try:
        millis = float(value)
    except ValueError:
        raise invalid(f"header {TIMEOUT_MS} must be a number of milliseconds, got {value!r}") from None
    if not math.isfinite(millis) or millis < 0:
        raise invalid(f"header {TIMEOUT_MS} must be a non-negative number of milliseconds")
    return millis / 1000.0


def _invalid(message: str) -> ClientError:
    return ClientError(StatusCode.INVALID_ARGUMENT, message)


def inbound_context(headers: Mapping[str, str]) -> Context:
    """The context of the request being served (lower-case ``headers``): its ids (a request id is
    made when it has none), its baggage but the id entries, its remaining deadline."""
    ids = {name: check_id(headers.get(name, ""), f"header {name}", _invalid) for name in ID_HEADERS}
    inbound = otel_baggage.get_all(propagate.extract(headers))
    baggage = {k: str(v) for k, v in inbound.items() if k not in ID_BAGGAGE}
    raw = headers.get(TIMEOUT_MS)
    return Context(
        session_id=ids[SESSION_ID],
        thread_id=ids[THREAD_ID],
        user_id=ids[USER_ID],
        request_id=ids[REQUEST_ID] or uuid.uuid4().hex,
        baggage=baggage,
        deadline=time.monotonic() + parse_timeout_ms(raw, _invalid) if raw else None,
    )


def inject_headers(
    context: Context,
    carrier: MutableMapping[str, str],
    trace: otel_context.Context | None = None,
    *,
    now: float | None = None,
) -> None:
    """Write the outbound context headers; ``trace`` defaults to the current span."""
    # The call's baggage travels on every hop, whatever the OpenTelemetry context holds; the ids
    # ride along under their semantic-convention names, always the call's own values (an inbound
    # entry claiming another user never passes through).
    trace = trace if trace is not None else otel_context.get_current()
    # Each change copies the context: only entries that differ from what it holds are written.
    held = otel_baggage.get_all(trace)
    for key, value in context.baggage.items():
        if key not in ID_BAGGAGE and held.get(key) != value:
            trace = otel_baggage.set_baggage(key, value, trace)
    for key, value in zip(ID_BAGGAGE, (context.session_id, context.thread_id, context.user_id), strict=True):
        if value and held.get(key) != value:
            trace = otel_baggage.set_baggage(key, value, trace)
        elif not value and key in held:
            trace = otel_baggage.remove_baggage(key, trace)
    propagate.inject(carrier, context=trace)
    for name, value in zip(
        ID_HEADERS, (context.session_id, context.thread_id, context.user_id, context.request_id), strict=True
    ):
        if value:
            carrier[name] = value
    if context.idempotency_key:
        carrier[IDEMPOTENCY_KEY] = context.idempotency_key
    if context.deadline is not None:
        remaining = max(0.0, context.deadline - (time.monotonic() if now is None else now))
        carrier[TIMEOUT_MS] = str(int(remaining * 1000))
