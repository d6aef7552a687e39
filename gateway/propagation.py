"""Context on every hop: extract it from inbound headers, inject it outbound.

W3C ``traceparent``/``tracestate`` and ``baggage`` go through OpenTelemetry's
propagators (never hand-rolled); the ids and the remaining deadline travel in
plain headers so agents in any language can read them.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, MutableMapping

from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import propagate

from gateway.model import Context, InvalidRequest, new_request_id

SESSION_ID = "x-session-id"
THREAD_ID = "x-thread-id"
USER_ID = "x-user-id"
REQUEST_ID = "x-request-id"
# Remaining time budget in milliseconds when the request was sent (HTTP hops).
TIMEOUT_MS = "x-timeout-ms"
ATTEMPT = "x-attempt"
IDEMPOTENCY_KEY = "idempotency-key"
# The W3C baggage entry naming the current workflow run (the state service's workflow scope).
WORKFLOW_RUN_BAGGAGE = "agw.run"
# Baggage entry counting the hops of a call through gateways and workflow steps.
HOPS_BAGGAGE = "agw.hops"
# Baggage entries naming a call's request tree and the calls it had made when the call left.
TREE_BAGGAGE = "agw.tree"
CALLS_BAGGAGE = "agw.calls"

_ID_HEADERS = (SESSION_ID, THREAD_ID, USER_ID, REQUEST_ID)
# Baggage entries carrying the session, thread and user ids (OpenTelemetry attribute names).
# The gateway vouches for them: outbound they are always its own values (the user id is the
# authenticated identity's on listeners that do not trust identity headers; the session and
# thread ids are the ones the call's context holds), or absent. An inbound entry under one of
# these names (a baggage header, a body's context.baggage) is dropped where the context is
# built, so it reaches no agent, no body and no log as if the gateway had said it.
_ID_BAGGAGE = ("session.id", "gen_ai.conversation.id", "enduser.id")
_MAX_ID_LENGTH = 256
# Ids travel on as HTTP headers and gRPC metadata: visible ASCII (and inner spaces) only.
_HEADER_SAFE = re.compile(r"[\x20-\x7e]*")
_ID_NAMES = {
    SESSION_ID: "the session id (context.sessionId or x-session-id)",
    THREAD_ID: "the thread id (context.threadId or x-thread-id)",
    USER_ID: "the user id (context.userId or x-user-id)",
    REQUEST_ID: "the request id (context.requestId or x-request-id)",
}


def clean_id(name: str, value: str) -> str:
    """An id from a caller (header ``name`` or its body field), stripped; ``InvalidRequest``
    unless it is at most 256 printable ASCII characters, so it is safe as a header."""
    value = value.strip()
    if len(value) > _MAX_ID_LENGTH or not _HEADER_SAFE.fullmatch(value):
        raise InvalidRequest(
            f"{_ID_NAMES.get(name, name)} must be at most {_MAX_ID_LENGTH} printable ASCII characters "
            "(no control characters such as CR or LF)"
        )
    return value


def parse_timeout_ms(value: str) -> float:
    try:
        millis = float(value)
    except ValueError:
        raise InvalidRequest(f"header {TIMEOUT_MS} must be a number of milliseconds, got {value!r}") from None
    if not math.isfinite(millis) or millis < 0:
        raise InvalidRequest(f"header {TIMEOUT_MS} must be a non-negative number of milliseconds")
    return millis / 1000.0


def context_from_headers(
    headers: Mapping[str, str],
    explicit: Context | None = None,
    *,
    timeout: float | None = None,
) -> Context:
    """Build the call's context: explicit values (request body) win over headers.

    A request id is generated when neither carries one; the deadline is the
    tightest of the header's remaining time, ``timeout`` and the explicit one.
    """
    return inbound_context(headers, explicit, timeout=timeout)[0]


def inbound_context(
    headers: Mapping[str, str],
    explicit: Context | None = None,
    *,
    timeout: float | None = None,
    user_id: str | None = None,
) -> tuple[Context, otel_context.Context]:
    """:func:`context_from_headers`, and the trace the call continues (the inbound trace plus
    the call's baggage, the SERVER span's parent), from one reading of the headers.

    ``user_id``: the id the gateway vouches for instead of the caller's (an untrusted
    listener's authenticated identity); the caller's is still checked.
    """
    explicit = explicit or Context()
    # Explicit (body) ids pass the same check as headers: every front ends up here.
    given = (explicit.session_id, explicit.thread_id, explicit.user_id, explicit.request_id)
    ids = {name: clean_id(name, value or headers.get(name, "")) for name, value in zip(_ID_HEADERS, given, strict=True)}
    extracted = propagate.extract(headers)
    inbound_baggage = {k: str(v) for k, v in otel_baggage.get_all(extracted).items()}
    baggage = {k: v for k, v in {**inbound_baggage, **explicit.baggage}.items() if k not in _ID_BAGGAGE}
    deadline = explicit.deadline
    for budget in (parse_timeout_ms(raw) if (raw := headers.get(TIMEOUT_MS)) else None, timeout):
        if budget is not None:
            candidate = time.monotonic() + budget
            deadline = candidate if deadline is None or candidate < deadline else deadline
    context = Context(
        session_id=ids[SESSION_ID],
        thread_id=ids[THREAD_ID],
        user_id=ids[USER_ID] if user_id is None else user_id,
        request_id=ids[REQUEST_ID] or new_request_id(),
        baggage=baggage,
        deadline=deadline,
    )
    return context, _with_baggage(extracted, baggage)


def otel_parent(headers: Mapping[str, str], context: Context) -> otel_context.Context:
    """The OpenTelemetry parent context: the inbound trace plus the call's baggage."""
    return _with_baggage(propagate.extract(headers), context.baggage)


def _with_baggage(parent: otel_context.Context, baggage: Mapping[str, str]) -> otel_context.Context:
    for key, value in baggage.items():
        parent = otel_baggage.set_baggage(key, value, parent)
    return parent


def inject_headers(
    context: Context,
    carrier: MutableMapping[str, str],
    trace: otel_context.Context | None = None,
    *,
    now: float | None = None,
) -> None:
    """Write the outbound context headers; ``trace`` defaults to the current span.

    Keys are lower-case so the same carrier works as gRPC metadata.
    """
    # The call's baggage (inbound entries plus ones the gateway adds, such as the hop
    # count) travels on every hop, whatever the current OpenTelemetry context holds; the
    # ids ride along under their semantic-convention names, always the gateway's own values
    # (an inbound entry claiming another user never passes through).
    trace = trace if trace is not None else otel_context.get_current()
    for key, value in context.baggage.items():
        if key not in _ID_BAGGAGE:
            trace = otel_baggage.set_baggage(key, value, trace)
    for key, value in zip(_ID_BAGGAGE, (context.session_id, context.thread_id, context.user_id), strict=True):
        trace = otel_baggage.set_baggage(key, value, trace) if value else otel_baggage.remove_baggage(key, trace)
    propagate.inject(carrier, context=trace)
    if context.session_id:
        carrier[SESSION_ID] = context.session_id
    if context.thread_id:
        carrier[THREAD_ID] = context.thread_id
    if context.user_id:
        carrier[USER_ID] = context.user_id
    if context.request_id:
        carrier[REQUEST_ID] = context.request_id
    if context.idempotency_key:
        carrier[IDEMPOTENCY_KEY] = context.idempotency_key
    if context.deadline is not None:
        remaining = max(0.0, context.deadline - (time.monotonic() if now is None else now))
        carrier[TIMEOUT_MS] = str(int(remaining * 1000))


def with_fresh_hops(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` with the hop count dropped from their baggage (a dead letter is a new
    start in depth; the tree's call budget, also in the baggage, still applies)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if "baggage" not in lowered:
        return dict(headers)
    entries = otel_baggage.get_all(propagate.extract(lowered))
    if HOPS_BAGGAGE not in entries:
        return dict(headers)
    trace = otel_context.Context()
    for key, value in entries.items():
        if key != HOPS_BAGGAGE:
            trace = otel_baggage.set_baggage(key, value, trace)
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace)
    out = {k: v for k, v in headers.items() if k.lower() != "baggage"}
    if carrier.get("baggage"):
        out["baggage"] = carrier["baggage"]
    return out


def outbound_headers(context: Context, trace: otel_context.Context | None = None) -> dict[str, str]:
    carrier: dict[str, str] = {}
    inject_headers(context, carrier, trace)
    return carrier
