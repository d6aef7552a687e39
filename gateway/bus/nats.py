"""NATS JetStream: durable, shared by several gateways, surviving restarts.

One stream per configured subject prefix (``<stream_prefix>_<PREFIX>`` capturing
``<prefix>.>``), plus one for dead letters. A consumer group is a durable pull
consumer filtered on the group's pattern, with explicit acks; its members pull
one event at a time so load shares evenly. Publishing sets the ``Nats-Msg-Id``
header, so JetStream drops a second publish of the same event id within the
stream's duplicate window. Handled event ids are kept in a key-value bucket
(``<stream_prefix>_processed``), so a redelivery of an event that was already
handled (say the gateway died between the agent's answer and the ack) is
recognised by any gateway, after a restart too.

A new group starts with the events published after it was created (the
"new" delivery policy); an existing durable consumer resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import Mapping, Sequence

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig
from nats.js.kv import KeyValue

from gateway.bus.base import (
    EVENT_ID_HEADER,
    Delivery,
    EventBus,
    ProcessedStore,
    PublishAck,
    Subscription,
    check_event_id,
    encode_payload,
    new_event_id,
)
from gateway.model import JSON, Cancelled, UpstreamUnavailable


def _unavailable(action: str, exc: BaseException) -> UpstreamUnavailable:
    return UpstreamUnavailable(f"the NATS event bus could not {action}: {exc or type(exc).__name__}")


class NatsDelivery(Delivery):
    def __init__(self, msg: Msg) -> None:
        headers = dict(msg.headers or {})
        self.event_id = headers.pop(EVENT_ID_HEADER, "") or f"seq-{msg.metadata.sequence.stream}"
        self.subject = msg.subject
        self.data = msg.data
        self.headers = headers
        self.attempt = msg.metadata.num_delivered
        self._msg = msg

    async def ack(self) -> None:
        await self._msg.ack()

    async def nak(self, delay: float | None = None) -> None:
        await self._msg.nak(delay=delay)

    async def in_progress(self) -> None:
        await self._msg.in_progress()


class NatsSubscription(Subscription):
    def __init__(
        self, bus: NatsBus, pattern: str, group: str, sub: JetStreamContext.PullSubscription, private: bool
    ) -> None:
        self.bus = bus
        self.pattern = pattern
        self.group = group
        self._sub = sub
        self._private = private
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed or self.bus.closed

    async def next(self, timeout: float | None = None) -> Delivery | None:
        if self.closed:
            return None
        try:
            messages = await self._sub.fetch(1, timeout=timeout if timeout else 5.0)
        except nats.errors.TimeoutError:
            return None
        except (nats.errors.ConnectionClosedError, nats.errors.BadSubscriptionError):
            if self.closed:
                return None
            raise
        return NatsDelivery(messages[0]) if messages else None

    async def close(self) -> None:
        """Leave the group: what was fetched and not acknowledged comes back after ``ack_wait``."""
        if self._closed:
            return
        self._closed = True
        if self.bus.closed:
            return
        # A private consumer that cannot be deleted now is removed by its inactivity threshold.
        with contextlib.suppress(nats.errors.Error, nats.js.errors.Error, TimeoutError):
            async with asyncio.timeout(2.0):
                await self._sub.unsubscribe()
                if self._private:
                    await self.bus.js.delete_consumer(self.bus.stream_for(self.pattern), self.group)


class NatsProcessedStore(ProcessedStore):
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    @staticmethod
    def _key(key: str) -> str:
        # Key-value keys allow fewer characters than event ids: hash.
        return hashlib.sha256(key.encode()).hexdigest()

    async def get(self, key: str) -> bytes | None:
        try:
            entry = await self.kv.get(self._key(key))
        except nats.js.errors.KeyNotFoundError:
            return None
        except (nats.errors.Error, nats.js.errors.Error) as exc:
            raise _unavailable("read the processed-events bucket", exc) from exc
        return entry.value or b""

    async def put(self, key: str, value: bytes) -> None:
        try:
            await self.kv.put(self._key(key), value)
        except (nats.errors.Error, nats.js.errors.Error) as exc:
            raise _unavailable("write the processed-events bucket", exc) from exc


class NatsBus(EventBus):
    """The NATS JetStream event bus."""

    backend = "nats"

    def __init__(
        self,
        url: str,
        prefixes: Sequence[str] = ("events",),
        dead_letter_prefix: str = "deadletter",
        *,
        stream_prefix: str = "AGW",
        max_deliver: int = 5,
        ack_wait: float = 30.0,
        duplicate_window: float = 120.0,
        processed_ttl: float = 3600.0,
        connect_timeout: float = 5.0,
    ) -> None:
        super().__init__(prefixes, dead_letter_prefix)
        self.url = url
        self.stream_prefix = stream_prefix
        self.max_deliver = max_deliver
        self.ack_wait = ack_wait
        self.duplicate_window = duplicate_window
        self.processed_ttl = processed_ttl
        self.connect_timeout = connect_timeout
        self.closed = False
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._processed: NatsProcessedStore | None = None

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise Cancelled("the NATS event bus is not started")
        return self._js

    def stream_name(self, prefix: str) -> str:
        return f"{self.stream_prefix}_{prefix.upper().replace('-', '_')}"

    @property
    def processed_bucket(self) -> str:
        return f"{self.stream_prefix}_processed"

    def stream_for(self, subject: str) -> str:
        return self.stream_name(subject.split(".", 1)[0])

    async def start(self) -> None:
        try:
            self._nc = await nats.connect(
                self.url,
                name="agent-gateway",
                connect_timeout=max(1, round(self.connect_timeout)),
                allow_reconnect=True,
                max_reconnect_attempts=-1,
            )
        except (OSError, nats.errors.Error) as exc:
            raise _unavailable(f"connect to {self.url} (bus.url)", exc) from exc
        self._js = self._nc.jetstream()
        try:
            for prefix in (*self.prefixes, self.dead_letter_prefix):
                await self._ensure_stream(prefix)
            kv = await self._js.create_key_value(bucket=self.processed_bucket, history=1, ttl=self.processed_ttl)
        except (nats.errors.Error, nats.js.errors.Error) as exc:
            await self.close()
            raise _unavailable("set up its JetStream streams (is JetStream enabled on the server?)", exc) from exc
        self._processed = NatsProcessedStore(kv)

    async def _ensure_stream(self, prefix: str) -> None:
        config = StreamConfig(
            name=self.stream_name(prefix),
            subjects=[f"{prefix}.>"],
            duplicate_window=self.duplicate_window,
        )
        try:
            await self.js.stream_info(config.name or "")
        except nats.js.errors.NotFoundError:
            await self.js.add_stream(config)
        else:
            await self.js.update_stream(config)

    async def publish(
        self,
        subject: str,
        data: bytes | JSON,
        headers: Mapping[str, str] | None = None,
        event_id: str | None = None,
    ) -> PublishAck:
        self.check_publish_subject(subject)
        event_id = check_event_id(event_id) if event_id else new_event_id()
        try:
            ack = await self.js.publish(
                subject, encode_payload(data), headers={**(headers or {}), EVENT_ID_HEADER: event_id}
            )
        except (nats.errors.Error, nats.js.errors.Error) as exc:
            raise _unavailable(f"publish to {subject!r}", exc) from exc
        return PublishAck(event_id, duplicate=bool(ack.duplicate))

    async def subscribe(
        self, pattern: str, group: str | None = None, *, max_deliver: int | None = None
    ) -> Subscription:
        self.check_pattern(pattern)
        private = group is None
        # Consumer names cannot hold dots (group names may).
        durable = (group or f"private-{uuid.uuid4().hex[:12]}").replace(".", "_")
        config = ConsumerConfig(
            durable_name=durable,
            filter_subject=pattern,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.NEW,
            ack_wait=self.ack_wait,
            # One more than the handlers' attempts: a delivery whose handler never
            # finished (the gateway died) still reaches a gateway that dead-letters it.
            max_deliver=(max_deliver or self.max_deliver) + 1,
            inactive_threshold=60.0 if private else None,
        )
        try:
            sub = await self.js.pull_subscribe(pattern, durable=durable, stream=self.stream_for(pattern), config=config)
        except (nats.errors.Error, nats.js.errors.Error) as exc:
            raise _unavailable(f"create consumer {durable!r} on {pattern!r}", exc) from exc
        return NatsSubscription(self, pattern, durable, sub, private)

    def processed_store(self) -> ProcessedStore:
        if self._processed is None:
            raise Cancelled("the NATS event bus is not started")
        return self._processed

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._nc is not None:
            # Not drain(): it would wait for the pull requests still open to expire.
            with contextlib.suppress(nats.errors.Error, nats.js.errors.Error, TimeoutError):
                await self._nc.flush(timeout=1)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await self._nc.close()
