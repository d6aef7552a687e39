"""The normalized model every front, policy and adapter speaks.

A call enters through a front, becomes one :class:`Invocation`, and comes back
as a :class:`Result` or a stream of :class:`Event` objects. Adapters map their
framework's wire format to these types and back; policies act on the
:class:`GatewayError` hierarchy below. This module does no I/O and imports
nothing of ours but the client's model, whose types it shares.

Errors::

    GatewayError                      code           HTTP  transient
    ├── InvalidRequest                INVALID_ARGUMENT 400  no
    ├── Unauthenticated               UNAUTHENTICATED 401  no
    ├── PermissionDenied              PERMISSION_DENIED 403 no
    ├── NotFound                      NOT_FOUND       404  no
    ├── Conflict                      ABORTED         409  no
    ├── ResourceExhausted             RESOURCE_EXHAUSTED 429/503 yes
    │   └── CircuitOpen               UNAVAILABLE     503  yes (fails fast, never reached the agent)
    ├── Unavailable                   UNAVAILABLE     503  yes (the gateway itself: shutting down, full)
    ├── Cancelled                     CANCELLED       499  no
    └── UpstreamError                 (an agent failed; transient or permanent)
        ├── UpstreamUnavailable       UNAVAILABLE     503  yes (connect errors, resets, 502/503)
        ├── UpstreamTimeout           DEADLINE_EXCEEDED 504 yes
        └── UpstreamRejected          FAILED_PRECONDITION / per status 4xx/502  no
            └── UpstreamNotFound      NOT_FOUND       404  no (the agent has no such assistant/crew/task)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

# The wire model's messages, parts, results, events, context and status codes have one definition,
# the client's (agentgateway_client.model, no dependencies): the gateway and its client share the classes.
from agentgateway_client.model import (
    JSON,
    Context,
    DataPart,
    Event,
    FilePart,
    Message,
    Part,
    Result,
    Role,
    StatusCode,
    TextPart,
    TokenUsage,
    evolve,
)

__all__ = [
    "ANONYMOUS_CALLER",
    "GRPC_CODE_NUMBERS",
    "JSON",
    "AgentSpec",
    "Attempt",
    "CallRecord",
    "Caller",
    "Cancelled",
    "CircuitOpen",
    "Conflict",
    "Context",
    "DataPart",
    "Event",
    "FilePart",
    "GatewayError",
    "InvalidRequest",
    "Invocation",
    "Message",
    "NotFound",
    "Options",
    "Part",
    "PermissionDenied",
    "ResourceExhausted",
    "Result",
    "Role",
    "StatusCode",
    "TextPart",
    "TokenUsage",
    "Unauthenticated",
    "Unavailable",
    "UpstreamError",
    "UpstreamNotFound",
    "UpstreamRejected",
    "UpstreamTimeout",
    "UpstreamTls",
    "UpstreamUnavailable",
    "add_usage",
    "code_for_http_status",
    "evolve",
    "new_request_id",
]


def new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Options:
    params: Mapping[str, JSON] = field(default_factory=dict)
    # False: never repeat the call once it may have reached the agent.
    idempotent: bool = True


@dataclass(slots=True)
class CallRecord:
    """What happened to one call on its way through the policies: attempts made,
    retries with their reasons and waits, the fallback used. Shared (mutable) by
    every copy of the invocation along the chain; read by the fronts and the logs."""

    attempts: int = 0
    retries: list[dict[str, JSON]] = field(default_factory=list)
    fallback: str = ""
    # The route that took the call ("" when it went straight to an agent).
    route: str = ""
    # Model tokens the answering attempts reported (None: the framework did not say).
    usage: TokenUsage | None = None
    # The calls its request tree had made (see gateway.call_budget) when this call last entered.
    tree_calls: int = 0
    # The workflow run it started, when it called a workflow ("" otherwise).
    workflow_run: str = ""
    # Set by a caller that may answer before the call ends (the run of a blocking A2A SendMessage):
    # an adapter whose upstream answered its own call while the work goes on (an A2A task left
    # working) reports it here as a status event. The call still returns at its end.
    on_answer: Callable[[Event], None] | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made the call, as the front authenticated it (routes may match on it); empty when anonymous."""

    name: str = ""
    claims: Mapping[str, JSON] = field(default_factory=dict)


ANONYMOUS_CALLER = Caller()


@dataclass(frozen=True, slots=True)
class Invocation:
    """One normalized call to a logical agent name."""

    agent: str
    messages: tuple[Message, ...]
    context: Context = field(default_factory=Context)
    options: Options = field(default_factory=Options)
    # Inbound headers / gRPC metadata (lower-case keys), for route matching.
    headers: Mapping[str, str] = field(default_factory=dict)
    # The HTTP call's query parameters (first value of each), for route matching.
    query: Mapping[str, str] = field(default_factory=dict)
    caller: Caller = ANONYMOUS_CALLER
    # 1 for the first upstream attempt; the retry policy counts up.
    attempt: int = 1
    record: CallRecord = field(default_factory=CallRecord, compare=False, repr=False)


def add_usage(total: TokenUsage | None, more: TokenUsage | None) -> TokenUsage | None:
    """``total + more`` where either may be unknown (None)."""
    if more is None:
        return total
    return more if total is None else total + more


@dataclass(frozen=True, slots=True)
class UpstreamTls:
    """How the gateway verifies an agent (custom CA) and proves itself to it (client certificate)."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    # The name to verify in the agent's certificate, when it differs from the endpoint's host.
    server_name: str | None = None


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """An upstream agent as the adapters see it (validated config, no I/O)."""

    name: str
    kind: str
    endpoint: str
    options: Mapping[str, JSON] = field(default_factory=dict)
    description: str = ""
    tls: UpstreamTls | None = None
    # The GenAI provider behind the agent, when the config names it (gen_ai.provider.name).
    provider: str | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One upstream attempt: what an adapter receives.

    ``headers`` are the context headers to send upstream (trace context,
    baggage, ids, remaining deadline), already computed for this attempt.
    """

    invocation: Invocation
    headers: Mapping[str, str]

    @property
    def attempt(self) -> int:
        return self.invocation.attempt

    @property
    def context(self) -> Context:
        return self.invocation.context

    def timeout(self) -> float | None:
        return self.invocation.context.remaining()


# The numbers of the canonical codes (google.rpc.Code), for rpc.grpc.status_code and the like.
GRPC_CODE_NUMBERS = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}


def code_for_http_status(status: int) -> StatusCode | None:
    """The canonical code of an HTTP answer (None for success), as gRPC-HTTP mappings read statuses."""
    if status < 400:
        return None
    known = {
        400: StatusCode.INVALID_ARGUMENT,
        401: StatusCode.UNAUTHENTICATED,
        403: StatusCode.PERMISSION_DENIED,
        404: StatusCode.NOT_FOUND,
        409: StatusCode.ABORTED,
        429: StatusCode.RESOURCE_EXHAUSTED,
        499: StatusCode.CANCELLED,
        501: StatusCode.UNIMPLEMENTED,
        502: StatusCode.UNAVAILABLE,
        503: StatusCode.UNAVAILABLE,
        504: StatusCode.DEADLINE_EXCEEDED,
    }
    return known.get(status, StatusCode.FAILED_PRECONDITION if status < 500 else StatusCode.UNKNOWN)


class GatewayError(Exception):
    """Base of every error a caller can see; carries what both fronts need."""

    # Instance-overridable: the Python client's ClientError carries the code the gateway sent.
    code: StatusCode = StatusCode.INTERNAL
    http_status: ClassVar[int] = 500
    transient: bool = False
    # False only when the request certainly never reached the agent (connect refused,
    # breaker open, bulkhead full): then even a non-idempotent call may be retried.
    reached: bool = True
    # The upstream's own error body (bounded), for the adapter and the failure log: it may hold
    # a traceback, so callers see at most `server.upstream_body_excerpt` characters of it.
    upstream_body: str = ""

    def __init__(
        self,
        message: str,
        *,
        agent: str = "",
        details: Mapping[str, JSON] | None = None,
        transient: bool | None = None,
        retry_after: float | None = None,
        http_status: int | None = None,
        reached: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.agent = agent
        self.details: Mapping[str, JSON] = details or {}
        if transient is not None:
            self.transient = transient
        self.retry_after = retry_after
        if reached is not None:
            self.reached = reached
        if http_status is not None:
            self.status = http_status
        else:
            self.status = type(self).http_status

    def __str__(self) -> str:
        return f"{self.message} (agent {self.agent!r})" if self.agent else self.message


class InvalidRequest(GatewayError):
    code = StatusCode.INVALID_ARGUMENT
    http_status = 400


class Unauthenticated(GatewayError):
    code = StatusCode.UNAUTHENTICATED
    http_status = 401


class PermissionDenied(GatewayError):
    code = StatusCode.PERMISSION_DENIED
    http_status = 403


class NotFound(GatewayError):
    code = StatusCode.NOT_FOUND
    http_status = 404


class Conflict(GatewayError):
    code = StatusCode.ABORTED
    http_status = 409


class ResourceExhausted(GatewayError):
    code = StatusCode.RESOURCE_EXHAUSTED
    http_status = 429
    transient = True


class CircuitOpen(ResourceExhausted):
    """The agent's circuit breaker is open: calls fail fast without reaching it."""

    code = StatusCode.UNAVAILABLE
    http_status = 503
    reached = False


class Unavailable(GatewayError):
    """The gateway itself cannot take or finish the call (shutting down, at its connection
    limit); another instance can."""

    code = StatusCode.UNAVAILABLE
    http_status = 503
    transient = True


class Cancelled(GatewayError):
    code = StatusCode.CANCELLED
    http_status = 499


class UpstreamError(GatewayError):
    """An upstream agent failed. ``transient`` says whether a retry may help."""

    code = StatusCode.UNKNOWN
    http_status = 502


class UpstreamUnavailable(UpstreamError):
    code = StatusCode.UNAVAILABLE
    http_status = 503
    transient = True


class UpstreamTimeout(UpstreamError):
    code = StatusCode.DEADLINE_EXCEEDED
    http_status = 504
    transient = True


class UpstreamRejected(UpstreamError):
    """The agent refused the request (a 4xx, a framework validation error)."""

    code = StatusCode.FAILED_PRECONDITION
    http_status = 502


class UpstreamNotFound(UpstreamRejected):
    """The agent's server is up but has no such target (an unknown assistant, graph or task)."""

    code = StatusCode.NOT_FOUND
    http_status = 404
