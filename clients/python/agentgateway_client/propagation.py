"""The context a call carries: read from the request the agent serves, written onto each call.

The same headers the gateway reads and writes (``gateway.propagation``): W3C ``traceparent``,
``tracestate`` and ``baggage`` through OpenTelemetry's propagators, the session, thread, user and
request ids and the remaining deadline in plain headers. Keys are lower-case, so a carrier is
gRPC metadata as it is. No I/O here.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field, replace

from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import propagate

from agentgateway_client.model import ClientError, StatusCode

SESSION_ID = "x-session-id"
THREAD_ID = "x-thread-id"
USER_ID = "x-user-id"
REQUEST_ID = "x-request-id"
# Remaining time budget in milliseconds when the request was sent.
TIMEOUT_MS = "x-timeout-ms"

_ID_HEADERS = (SESSION_ID, THREAD_ID, USER_ID, REQUEST_ID)
# Baggage entries the gateway writes the ids under (OpenTelemetry attribute names): always the
# call's own ids, never an inbound entry of the same name.
ID_BAGGAGE = ("session.id", "gen_ai.conversation.id", "enduser.id")
_MAX_ID_LENGTH = 256
# Ids travel on as HTTP headers and gRPC metadata: visible ASCII (and inner spaces) only.
_HEADER_SAFE = re.compile(r"[\x20-\x7e]*")


@dataclass(frozen=True, slots=True)
class Context:
    """The ids, baggage and deadline of a call; ``deadline`` is a :func:`time.monotonic` instant
    (it crosses the wire as remaining time, so clocks never need to agree)."""

    session_id: str = ""
    thread_id: str = ""
    user_id: str = ""
    request_id: str = ""
    baggage: Mapping[str, str] = field(default_factory=dict)
    deadline: float | None = None

    def remaining(self, now: float | None = None) -> float | None:
        """Seconds left before the deadline (never negative), or None without one."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - (time.monotonic() if now is None else now))

    def with_timeout(self, timeout: float | None) -> Context:
        """This context with its deadline tightened to ``timeout`` seconds from now."""
        if timeout is None:
            return self
        candidate = time.monotonic() + timeout
        if self.deadline is not None and self.deadline <= candidate:
            return self
        return replace(self, deadline=candidate)


def _clean_id(name: str, value: str) -> str:
    value = value.strip()
    if len(value) > _MAX_ID_LENGTH or not _HEADER_SAFE.fullmatch(value):
        raise ClientError(
            StatusCode.INVALID_ARGUMENT,
            f"header {name} must be at most {_MAX_ID_LENGTH} printable ASCII characters "
            "(no control characters such as CR or LF)",
        )
    return value


def _timeout(value: str) -> float:
    try:
        millis = float(value)
    except ValueError:
        millis = math.nan
    if not math.isfinite(millis) or millis < 0:
        raise ClientError(
            StatusCode.INVALID_ARGUMENT, f"header {TIMEOUT_MS} must be a non-negative number of milliseconds"
        )
    return millis / 1000.0


def inbound_context(headers: Mapping[str, str]) -> Context:
    """The context of the request being served (lower-case ``headers``): its ids (a request id is
    made when it has none), its baggage but the id entries, its remaining deadline."""
    ids = {name: _clean_id(name, headers.get(name, "")) for name in _ID_HEADERS}
    inbound = otel_baggage.get_all(propagate.extract(headers))
    baggage = {k: str(v) for k, v in inbound.items() if k not in ID_BAGGAGE}
    raw = headers.get(TIMEOUT_MS)
    return Context(
        session_id=ids[SESSION_ID],
        thread_id=ids[THREAD_ID],
        user_id=ids[USER_ID],
        request_id=ids[REQUEST_ID] or uuid.uuid4().hex,
        baggage=baggage,
        deadline=time.monotonic() + _timeout(raw) if raw else None,
    )


def inject_headers(
    context: Context,
    carrier: MutableMapping[str, str],
    trace: otel_context.Context | None = None,
    *,
    now: float | None = None,
) -> None:
    """Write the outbound context headers; ``trace`` defaults to the current span."""
    # The baggage travels whatever the OpenTelemetry context holds; the ids ride along under
    # their semantic-convention names, always the call's own values.
    trace = trace if trace is not None else otel_context.get_current()
    for key, value in context.baggage.items():
        if key not in ID_BAGGAGE:
            trace = otel_baggage.set_baggage(key, value, trace)
    for key, value in zip(ID_BAGGAGE, (context.session_id, context.thread_id, context.user_id), strict=True):
        trace = otel_baggage.set_baggage(key, value, trace) if value else otel_baggage.remove_baggage(key, trace)
    propagate.inject(carrier, context=trace)
    for name, value in zip(
        _ID_HEADERS, (context.session_id, context.thread_id, context.user_id, context.request_id), strict=True
    ):
        if value:
            carrier[name] = value
    if context.deadline is not None:
        remaining = max(0.0, context.deadline - (time.monotonic() if now is None else now))
        carrier[TIMEOUT_MS] = str(int(remaining * 1000))
