"""What a call carries and returns: messages and their parts, results, events, status codes and errors.

The one definition of these types: the gateway's model (``gateway.model``) is built on them, so the
client and the gateway speak the same classes. Light by design (the standard library only): the
gateway imports it, and an agent installs the client alone. No I/O here.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

_T = TypeVar("_T")
JSON: TypeAlias = Any
"""A JSON-compatible value: dict, list, str, int, float, bool or None."""


def evolve(obj: _T, **changes: Any) -> _T:
    """``dataclasses.replace`` for the model's frozen slotted dataclasses, without its
    per-call field introspection: the gateway's hot path copies invocations several times per call."""
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
class TokenUsage:
    """Model tokens a call reported (the GenAI semantic conventions' input and output tokens)."""

    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens)

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


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
class AgentDescription:
    name: str
    kind: str
    endpoint: str
    description: str
    streaming: bool


class StatusCode(enum.StrEnum):
    """Canonical status names (the gRPC codes), shared by both fronts and the client."""

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


class ClientError(Exception):
    """A failed call, with the gateway's status code and structured detail."""

    def __init__(
        self,
        code: StatusCode,
        message: str,
        *,
        agent: str = "",
        transient: bool = False,
        request_id: str = "",
        details: Mapping[str, JSON] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.agent = agent
        self.transient = transient
        self.request_id = request_id
        self.details: Mapping[str, JSON] = details or {}

    def __str__(self) -> str:
        return f"{self.message} (agent {self.agent!r})" if self.agent else self.message
