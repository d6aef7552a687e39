"""Run a handler over a subscription with at-least-once semantics.

A handler that returns acks its delivery. One that raises naks it, so the
event comes back after the backoff delay for its attempt; after
``max_deliver`` attempts the event goes to the dead-letter subject
(``<dead_letter_prefix>.<subject>``) with the failure context, and is acked.
While a handler runs, the delivery is kept alive (NATS ``in_progress``) so a
slow agent is not mistaken for a dead gateway.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.bus.base import Delivery, EventBus, Subscription
from gateway.model import GatewayError, UpstreamError
from gateway.propagation import with_fresh_hops

log = logging.getLogger("agent_gateway.bus")

EventHandler = Callable[[Delivery], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RedeliveryPolicy:
    max_deliver: int = 5
    backoff: Sequence[float] = (0.5, 2.0, 10.0)

    def delay(self, attempt: int) -> float:
        """The delay before the redelivery that follows failed ``attempt`` (1-based)."""
        return float(self.backoff[min(attempt, len(self.backoff)) - 1])


def dead_letter_body(delivery: Delivery, error: BaseException | None, consumer: str) -> dict[str, Any]:
    """What a dead letter says: the event, where it failed and why."""
    data = delivery.json()
    body: dict[str, Any] = {
        "event_id": delivery.event_id,
        "subject": delivery.subject,
        "consumer": consumer,
        "attempts": delivery.attempt,
        "data": data,
    }
    if data is None and delivery.data:
        body["data_base64"] = base64.b64encode(delivery.data).decode()
    if isinstance(error, GatewayError):
        body["error"] = {"code": error.code.value, "message": error.message, "details": dict(error.details)}
    elif error is not None:
        body["error"] = {"code": "INTERNAL", "message": f"{type(error).__name__}: {error}"}
    else:
        body["error"] = {"code": "ABORTED", "message": "delivery attempts exhausted: the last attempt never finished"}
    return body


class Consumer:
    """Pulls deliveries from one subscription and runs ``handler`` on each,
    up to ``concurrency`` at a time."""

    def __init__(
        self,
        bus: EventBus,
        subscription: Subscription,
        handler: EventHandler,
        policy: RedeliveryPolicy,
        *,
        name: str = "",
        concurrency: int = 1,
        keepalive: float | None = None,
    ) -> None:
        self.bus = bus
        self.subscription = subscription
        self.handler = handler
        self.policy = policy
        self.name = name or subscription.group
        self.concurrency = concurrency
        self.keepalive = keepalive
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"consumer {self.name}")

    async def _loop(self) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        while not self.subscription.closed:
            await slots.acquire()
            try:
                delivery = await self.subscription.next(timeout=1.0)
            except GatewayError as exc:
                slots.release()
                log.warning("consumer %s: %s", self.name, exc)
                await asyncio.sleep(1.0)
                continue
            except Exception:
                slots.release()
                if self.subscription.closed:
                    return
                log.exception("consumer %s: fetching failed", self.name)
                await asyncio.sleep(1.0)
                continue
            if delivery is None:
                slots.release()
                continue
            task = asyncio.create_task(self._handle(delivery))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            task.add_done_callback(lambda _: slots.release())

    async def _handle(self, delivery: Delivery) -> None:
        if delivery.attempt > self.policy.max_deliver:
            await self._dead_letter(delivery, None)
            return
        keepalive = asyncio.create_task(self._keep_alive(delivery)) if self.keepalive else None
        try:
            await self.handler(delivery)
        except asyncio.CancelledError:
            await _quietly(delivery.nak())
            raise
        except Exception as exc:
            if delivery.attempt >= self.policy.max_deliver or _permanent(exc):
                await self._dead_letter(delivery, exc)
            else:
                log.info(
                    "consumer %s: event %s failed on attempt %d, redelivering: %s",
                    self.name,
                    delivery.event_id,
                    delivery.attempt,
                    exc,
                )
                await _quietly(delivery.nak(self.policy.delay(delivery.attempt)))
            return
        finally:
            if keepalive is not None:
                keepalive.cancel()
        await _quietly(delivery.ack())

    async def _keep_alive(self, delivery: Delivery) -> None:
        assert self.keepalive is not None
        while True:
            await asyncio.sleep(self.keepalive)
            await _quietly(delivery.in_progress())

    async def _dead_letter(self, delivery: Delivery, error: BaseException | None) -> None:
        if delivery.subject.startswith(self.bus.dead_letter_prefix + "."):
            # A dead letter its own handler could not take is not dead-lettered again: that
            # would chain deadletter.deadletter... letters without end.
            log.error(
                "consumer %s: dead letter %s on %s could not be handled either; dropped: %s",
                self.name,
                delivery.event_id,
                delivery.subject,
                error,
            )
            await _quietly(delivery.ack())
            return
        subject = self.bus.dead_letter_subject(delivery.subject)
        log.warning("consumer %s: event %s dead-lettered to %s: %s", self.name, delivery.event_id, subject, error)
        try:
            # Same id: a dead letter published twice (after a crash) is kept once. Its handling
            # starts a fresh hop count (a loop's letter arrives at the hop limit); the request
            # tree's call budget, also in the baggage, still applies.
            await self.bus.publish(
                subject,
                dead_letter_body(delivery, error, self.name),
                with_fresh_hops(delivery.headers),
                delivery.event_id,
            )
        except GatewayError as exc:
            log.error("consumer %s: could not dead-letter event %s: %s", self.name, delivery.event_id, exc)
            await _quietly(delivery.nak(self.policy.delay(delivery.attempt)))
            return
        await _quietly(delivery.ack())

    async def stop(self, grace: float = 0.0) -> None:
        """Stop pulling, give running handlers ``grace`` seconds, cancel the rest
        (their events come back to the group), leave the group."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._running and grace > 0:
            await asyncio.wait(set(self._running), timeout=grace)
        running = list(self._running)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await self.subscription.close()


def _permanent(error: Exception) -> bool:
    """A request that cannot succeed however often it is retried (a bad input,
    an unknown agent, the hop limit) goes to the dead letters at once; an agent's
    failure, transient or not, is retried."""
    return isinstance(error, GatewayError) and not isinstance(error, UpstreamError) and not error.transient


async def _quietly(action: Awaitable[None]) -> None:
    # An ack that cannot be sent is not fatal: the event is redelivered later.
    with contextlib.suppress(Exception):
        await action
