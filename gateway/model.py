"""The normalized model every front, policy and adapter speaks.

A call enters through a front, becomes one :class:`Invocation`, and comes back
as a :class:`Result` or a stream of :class:`Event` objects. Adapters map their
framework's wire format to these types and back; policies act on the
:class:`GatewayError` hierarchy below. This module does no I/O and imports
nothing else of ours.

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

import enum
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, TypeAlias, TypeVar

_T = TypeVar("_T")
JSON: TypeAlias = Any
"""A JSON-compatible value: dict, list, str, int, float, bool or None."""

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def evolve(obj: _T, **changes: Any) -> _T:
    """``dataclasses.replace`` for the model's frozen slotted dataclasses, without its
    per-call field introspection: the hot path copies invocations several times per call."""
    new = object.__new__(type(obj))
    for name in type(obj).__slots__:  # type: ignore[attr-defined]
        object.__setattr__(new, name, changes[name] if name in changes else getattr(obj, name))
    return new


class Role(enum.StrEnum):
    """Who is speaking in a :class:`Message`."""

    USER = "user"
    AGENT = "agent"
    SYSTEM = "system"
    TOOL = "tool"


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str
    metadata: Mapping[str, JSON] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DataPart:
    """Structured JSON content."""

    data: JSON
    metadata: Mapping[str, JSON] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FilePart:
    """A reference to a file; the gateway passes the reference, never the bytes."""

    uri: str
    media_type: str = ""
    name: str = ""
    metadata: Mapping[str, JSON] = field(default_factory=dict)


Part: TypeAlias = TextPart | DataPart | FilePart


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    parts: tuple[Part, ...]
    metadata: Mapping[str, JSON] = field(default_factory=dict)
    message_id: str = ""

    @classmethod
    def user(cls, text: str) -> Message:
        return cls(Role.USER, (TextPart(text),))

    @classmethod
    def agent(cls, text: str) -> Message:
        return cls(Role.AGENT, (TextPart(text),))

    @property
    def text(self) -> str:
        """The concatenated text parts (empty when there are none)."""
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))


def new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Context:
    """Context propagated on every hop (trace context travels with OpenTelemetry).

    ``deadline`` is a :func:`time.monotonic` instant: deadlines cross process
    boundaries as *remaining* time, so clocks never need to agree.
    """

    session_id: str = ""
    thread_id: str = ""
    user_id: str = ""
    request_id: str = ""
    baggage: Mapping[str, str] = field(default_factory=dict)
    deadline: float | None = None
    # Sent to the agent as ``idempotency-key``: the same on every re-send of one logical call
    # (a durable workflow's step resumed by another gateway).
    idempotency_key: str = ""

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
        return evolve(self, deadline=candidate)


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


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Model tokens a call reported (the GenAI semantic conventions' input and output tokens)."""

    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens)

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


def add_usage(total: TokenUsage | None, more: TokenUsage | None) -> TokenUsage | None:
    """``total + more`` where either may be unknown (None)."""
    if more is None:
        return total
    return more if total is None else total + more


@dataclass(frozen=True, slots=True)
class Result:
    agent: str
    messages: tuple[Message, ...]
    metadata: Mapping[str, JSON] = field(default_factory=dict)
    # What the framework reported the call cost in model tokens (None: it did not say).
    usage: TokenUsage | None = None

    @property
    def text(self) -> str:
        return "".join(m.text for m in self.messages)


@dataclass(frozen=True, slots=True)
class Event:
    """One streamed event: ``delta`` (partial content), ``message``, ``status``,
    ``tool``, ``step`` or a framework-specific type."""

    type: str
    message: Message | None = None
    data: JSON = None
    # Tokens this event reports (a stream's usage is the sum of its events').
    usage: TokenUsage | None = None


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


class StatusCode(enum.StrEnum):
    """Canonical status names (the gRPC codes), shared by both fronts."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    NOT_FOUND = "NOT_FOUND"
    ABORTED = "ABORTED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    CANCELLED = "CANCELLED"
    UNAVAILABLE = "UNAVAILABLE"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    # The method is not served at this path (HTTP 405), or the operation at all.
    UNIMPLEMENTED = "UNIMPLEMENTED"
    INTERNAL = "INTERNAL"
    UNKNOWN = "UNKNOWN"


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
