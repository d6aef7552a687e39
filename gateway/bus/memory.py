"""The in-process bus: zero setup, at least once within the process.

Each consumer group is a queue that its members take from (load sharing);
a publish puts the event in every matching group's queue, or fails with
:class:`BusFull` when one of them already holds ``max_pending`` events
(backpressure: the caller sees it at once instead of memory growing without
bound). A nak puts the event back after its delay; deliveries a member had
not acknowledged when it left go back to the group. Events published while
no group matches are dropped, as with a NATS consumer created later with the
"new" delivery policy; groups outlive their members for the process lifetime.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gateway.bus.base import (
    BusFull,
    Delivery,
    EventBus,
    ProcessedStore,
    PublishAck,
    Subscription,
    check_event_id,
    encode_payload,
    new_event_id,
)
from gateway.model import JSON, Cancelled
from gateway.protocols.subjects import subject_matches


@dataclass(frozen=True, slots=True)
class _Event:
    subject: str
    data: bytes
    headers: Mapping[str, str]
    event_id: str


class _Group:
    def __init__(self, pattern: str, name: str) -> None:
        self.pattern = pattern
        self.name = name
        self.queue: asyncio.Queue[tuple[_Event, int]] = asyncio.Queue()
        self.members = 0
        self.timers: set[asyncio.TimerHandle] = set()

    def put(self, event: _Event, attempt: int) -> None:
        self.queue.put_nowait((event, attempt))

    def put_later(self, event: _Event, attempt: int, delay: float) -> None:
        def fire() -> None:
            self.timers.discard(handle)
            self.put(event, attempt)

        handle = asyncio.get_running_loop().call_later(delay, fire)
        self.timers.add(handle)

    def cancel_timers(self) -> None:
        for handle in self.timers:
            handle.cancel()
        self.timers.clear()


class MemoryDelivery(Delivery):
    def __init__(self, subscription: MemorySubscription, event: _Event, attempt: int) -> None:
        self.subject = event.subject
        self.data = event.data
        self.headers = event.headers
        self.event_id = event.event_id
        self.attempt = attempt
        self._event = event
        self._subscription = subscription
        self._settled = False

    def _settle(self) -> bool:
        if self._settled:
            return False
        self._settled = True
        self._subscription.in_flight.discard(self)
        return True

    async def ack(self) -> None:
        self._settle()

    async def nak(self, delay: float | None = None) -> None:
        if self._settle():
            self._subscription.requeue(self._event, self.attempt + 1, delay)


class MemorySubscription(Subscription):
    def __init__(self, bus: MemoryBus, group: _Group, private: bool) -> None:
        self.bus = bus
        self.pattern = group.pattern
        self.group = group.name
        self._group = group
        self._private = private
        self._closed = False
        self.in_flight: set[MemoryDelivery] = set()
        group.members += 1

    @property
    def closed(self) -> bool:
        return self._closed or self.bus.closed

    def requeue(self, event: _Event, attempt: int, delay: float | None) -> None:
        if self.bus.closed:
            return
        if delay:
            self._group.put_later(event, attempt, delay)
        else:
            self._group.put(event, attempt)

    async def next(self, timeout: float | None = None) -> Delivery | None:
        if self.closed:
            return None
        try:
            async with asyncio.timeout(timeout):
                event, attempt = await self._group.queue.get()
        except TimeoutError:
            return None
        delivery = MemoryDelivery(self, event, attempt)
        self.in_flight.add(delivery)
        return delivery

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._group.members -= 1
        # At least once: what this member took but did not finish goes back to the group.
        for delivery in list(self.in_flight):
            await delivery.nak()
        if self._private:
            self._group.cancel_timers()
            self.bus.groups.pop((self._group.pattern, self._group.name), None)


class MemoryProcessedStore(ProcessedStore):
    """A bounded, time-limited record of handled events (oldest forgotten first)."""

    def __init__(self, max_entries: int, ttl: float) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if time.monotonic() - entry[0] > self.ttl:
            del self._entries[key]
            return None
        return entry[1]

    async def put(self, key: str, value: bytes) -> None:
        self._entries[key] = (time.monotonic(), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


class MemoryBus(EventBus):
    """The in-process event bus (the default backend)."""

    backend = "memory"

    def __init__(
        self,
        prefixes: Sequence[str] = ("events",),
        dead_letter_prefix: str = "deadletter",
        *,
        max_pending: int = 10_000,
        duplicate_window: float = 120.0,
        processed_max: int = 100_000,
        processed_ttl: float = 3600.0,
    ) -> None:
        super().__init__(prefixes, dead_letter_prefix)
        self.max_pending = max_pending
        self.duplicate_window = duplicate_window
        self.groups: dict[tuple[str, str], _Group] = {}
        self.closed = False
        self._recent: OrderedDict[str, float] = OrderedDict()
        self._processed = MemoryProcessedStore(processed_max, processed_ttl)

    def _is_duplicate(self, key: str) -> bool:
        now = time.monotonic()
        while self._recent and next(iter(self._recent.values())) < now - self.duplicate_window:
            self._recent.popitem(last=False)
        return key in self._recent

    async def publish(
        self,
        subject: str,
        data: bytes | JSON,
        headers: Mapping[str, str] | None = None,
        event_id: str | None = None,
    ) -> PublishAck:
        if self.closed:
            raise Cancelled("the event bus is closed")
        self.check_publish_subject(subject)
        event_id = check_event_id(event_id) if event_id else new_event_id()
        # Deduplicated per prefix, like JetStream per stream (a dead letter keeps its event's id).
        dedup_key = f"{subject.split('.', 1)[0]} {event_id}"
        if self._is_duplicate(dedup_key):
            return PublishAck(event_id, duplicate=True)
        targets = [g for g in self.groups.values() if subject_matches(g.pattern, subject)]
        for group in targets:
            if group.queue.qsize() >= self.max_pending:
                raise BusFull(
                    f"the in-process bus has {group.queue.qsize()} events waiting for consumer group "
                    f"{group.name!r} ({group.pattern}), the limit (bus.max_pending): its handlers are not "
                    "keeping up; retry later, raise the limit or add trigger concurrency",
                    retry_after=1.0,
                )
        event = _Event(subject, encode_payload(data), dict(headers or {}), event_id)
        for group in targets:
            group.put(event, 1)
        self._recent[dedup_key] = time.monotonic()
        return PublishAck(event_id, duplicate=False)

    async def subscribe(
        self, pattern: str, group: str | None = None, *, max_deliver: int | None = None
    ) -> Subscription:
        if self.closed:
            raise Cancelled("the event bus is closed")
        self.check_pattern(pattern)
        private = group is None
        name = group or f"private-{uuid.uuid4().hex[:12]}"
        key = (pattern, name)
        if key not in self.groups:
            self.groups[key] = _Group(pattern, name)
        return MemorySubscription(self, self.groups[key], private)

    def processed_store(self) -> ProcessedStore:
        return self._processed

    async def close(self) -> None:
        self.closed = True
        for group in self.groups.values():
            group.cancel_timers()
