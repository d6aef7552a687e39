"""What a call carries and returns: messages and their parts, results, events, status codes and errors.

The client's own copy of the wire model the gateway speaks (``gateway.model``): the same names,
fields and values, without the gateway's server-side types. tests/clients keeps the two in step.
No I/O here.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

JSON: TypeAlias = Any
"""A JSON-compatible value: dict, list, str, int, float, bool or None."""


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
class Result:
    agent: str
    messages: tuple[Message, ...]
    metadata: Mapping[str, JSON] = field(default_factory=dict)

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


@dataclass(frozen=True, slots=True)
class AgentDescription:
    name: str
    kind: str
    endpoint: str
    description: str
    streaming: bool


class StatusCode(enum.StrEnum):
    """Canonical status names (the gRPC codes), as the gateway reports them."""

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
