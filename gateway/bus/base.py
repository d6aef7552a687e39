"""The event bus contract shared by every backend.

An event is a subject, a payload of bytes, string headers (trace context
``traceparent``/``baggage``, session ids) and an id. Subscribers join a
*consumer group*: every group sees each matching event, and the members of
one group share its events (load sharing). Delivery is at least once: a
delivery must be acknowledged (:meth:`Delivery.ack`) or it comes back
(:meth:`Delivery.nak`, optionally after a delay), with its attempt counted.
"""

from __future__ import annotations

import json
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.model import JSON, InvalidRequest, ResourceExhausted
from gateway.protocols.subjects import check_subject

# NATS JetStream deduplicates on this header; the in-process bus honours it too.
EVENT_ID_HEADER = "Nats-Msg-Id"
_EVENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class BusFull(ResourceExhausted):
    """The in-process bus holds as many waiting events as allowed (backpressure)."""


def new_event_id() -> str:
    return uuid.uuid4().hex


def check_event_id(value: str) -> str:
    if not _EVENT_ID.fullmatch(value):  # `$` would let a trailing newline into the Nats-Msg-Id header
        raise InvalidRequest(f"invalid event id {value[:40]!r}: use 1 to 128 letters, digits, '.', '_', ':' or '-'")
    return value


def encode_payload(data: bytes | JSON) -> bytes:
    """Bytes go as they are; anything else as compact JSON."""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class PublishAck:
    event_id: str
    # True when an event with this id was already published within the duplicate window.
    duplicate: bool


class Delivery(ABC):
    """One delivery of an event to one consumer-group member."""

    subject: str
    data: bytes
    headers: Mapping[str, str]
    event_id: str
    # 1 for the first delivery; redeliveries count up.
    attempt: int

    def json(self) -> Any:
        """The payload as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")

    @abstractmethod
    async def ack(self) -> None:
        """Done: the event will not come back to this group."""

    @abstractmethod
    async def nak(self, delay: float | None = None) -> None:
        """Not done: redeliver (to any member of the group) after ``delay`` seconds."""

    async def in_progress(self) -> None:
        """Still working: postpone the redelivery of an unacknowledged event (NATS)."""
        return


class Subscription(ABC):
    """The deliveries of one consumer-group member; iterate, ack or nak each."""

    pattern: str
    group: str

    @abstractmethod
    async def next(self, timeout: float | None = None) -> Delivery | None:
        """The next delivery, or None when ``timeout`` passes (or the subscription closed)."""

    @abstractmethod
    async def close(self) -> None:
        """Leave the group; unacknowledged deliveries go back to the group."""

    @property
    @abstractmethod
    def closed(self) -> bool: ...

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        while not self.closed:
            delivery = await self.next(timeout=1.0)
            if delivery is not None:
                yield delivery


class ProcessedStore(ABC):
    """Remembers which (handler, event id) pairs completed, with what they produced,
    so a redelivered event that was already handled is not handled twice."""

    @abstractmethod
    async def get(self, key: str) -> bytes | None: ...

    @abstractmethod
    async def put(self, key: str, value: bytes) -> None: ...


class EventBus(ABC):
    """Publish events and consume them in groups; ``start`` before use, ``close`` after."""

    backend: str

    def __init__(self, prefixes: Sequence[str], dead_letter_prefix: str) -> None:
        self.prefixes = tuple(prefixes)
        self.dead_letter_prefix = dead_letter_prefix

    def check_publish_subject(self, subject: str) -> str:
        try:
            check_subject(subject, pattern=False)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        self._check_prefix(subject)
        return subject

    def check_pattern(self, pattern: str) -> str:
        try:
            check_subject(pattern, pattern=True)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        self._check_prefix(pattern)
        return pattern

    def _check_prefix(self, subject: str) -> None:
        first = subject.split(".", 1)[0]
        if first not in (*self.prefixes, self.dead_letter_prefix):
            raise InvalidRequest(
                f"subject {subject!r} must start with one of the bus prefixes {list(self.prefixes)} "
                "(bus.prefixes in the config)"
            )

    def dead_letter_subject(self, subject: str) -> str:
        return f"{self.dead_letter_prefix}.{subject}"

    async def start(self) -> None:
        return None

    @abstractmethod
    async def publish(
        self,
        subject: str,
        data: bytes | JSON,
        headers: Mapping[str, str] | None = None,
        event_id: str | None = None,
    ) -> PublishAck:
        """Publish once per ``event_id`` (generated when None) within the duplicate window."""

    @abstractmethod
    async def subscribe(
        self, pattern: str, group: str | None = None, *, max_deliver: int | None = None
    ) -> Subscription:
        """Join consumer ``group`` (durable) for subjects matching ``pattern``;
        without a group, a private one that ends with the subscription.
        ``max_deliver`` bounds the server's redeliveries (NATS) when set."""

    @abstractmethod
    def processed_store(self) -> ProcessedStore: ...

    @abstractmethod
    async def close(self) -> None: ...
