"""One suite, both backends: the in-process bus and NATS JetStream (real server on loopback)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import pytest

from gateway.bus.base import BusFull, Delivery, EventBus, Subscription
from gateway.bus.consumer import Consumer, RedeliveryPolicy
from gateway.bus.memory import MemoryBus
from gateway.bus.nats import NatsBus
from gateway.model import InvalidRequest
from gateway.protocols.subjects import subject_matches
from tests.bus.nats_support import NATS_URL, Names, delete_nats_resources, require_nats

BusFactory = Callable[..., Awaitable[EventBus]]


@pytest.fixture(params=["memory", "nats"])
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator[tuple[BusFactory, Names]]:
    """A factory of started buses sharing this test's unique names (several buses = several gateways)."""
    if request.param == "nats":
        require_nats()
    names = Names.fresh()
    async with AsyncExitStack() as stack:

        async def factory(**options: object) -> EventBus:
            bus: EventBus
            if request.param == "nats":
                bus = NatsBus(
                    NATS_URL,
                    [names.prefix],
                    names.dead_letter_prefix,
                    stream_prefix=names.stream_prefix,
                    ack_wait=float(options.pop("ack_wait", 5.0)),  # type: ignore[arg-type]
                    **options,  # type: ignore[arg-type]
                )
            else:
                options.pop("ack_wait", None)
                bus = MemoryBus([names.prefix], names.dead_letter_prefix, **options)  # type: ignore[arg-type]
            await bus.start()
            stack.push_async_callback(bus.close)
            return bus

        yield factory, names
    if request.param == "nats":
        await delete_nats_resources(names)


async def receive(subscription: Subscription, count: int, timeout: float = 5.0) -> list[Delivery]:
    """``count`` deliveries (acked), failing when they do not arrive within ``timeout``."""
    out: list[Delivery] = []
    async with asyncio.timeout(timeout):
        while len(out) < count:
            delivery = await subscription.next(timeout=1.0)
            if delivery is not None:
                await delivery.ack()
                out.append(delivery)
    return out


async def nothing_more(subscription: Subscription, wait: float = 0.3) -> None:
    delivery = await subscription.next(timeout=wait)
    assert delivery is None, f"unexpected delivery {delivery.subject} {delivery.data!r}"


def test_wildcards_follow_nats_semantics() -> None:
    assert subject_matches("a.*.c", "a.b.c")
    assert not subject_matches("a.*.c", "a.b.d")
    assert not subject_matches("a.*", "a.b.c")
    assert subject_matches("a.>", "a.b.c")
    assert not subject_matches("a.>", "a")
    assert subject_matches("a.b", "a.b")
    assert not subject_matches("a.b", "a.b.c")


async def test_publish_subscribe_carries_payload_headers_and_id(make_bus: tuple[BusFactory, Names]) -> None:
    factory, names = make_bus
    bus = await factory()
    sub = await bus.subscribe(f"{names.prefix}.orders.created", "reader")
    headers = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "x-session-id": "s-1"}
    ack = await bus.publish(f"{names.prefix}.orders.created", {"order": 7}, headers)
    await bus.publish(f"{names.prefix}.orders.cancelled", {"order": 8})  # not matched
    [delivery] = await receive(sub, 1)
    assert delivery.subject == f"{names.prefix}.orders.created"
    assert delivery.json() == {"order": 7}
    assert delivery.event_id == ack.event_id
    assert delivery.attempt == 1
    assert delivery.headers["traceparent"] == headers["traceparent"]
    assert delivery.headers["x-session-id"] == "s-1"
    await nothing_more(sub)


async def test_wildcard_subscriptions_and_independent_groups(make_bus: tuple[BusFactory, Names]) -> None:
    factory, names = make_bus
    bus = await factory()
    star = await bus.subscribe(f"{names.prefix}.*.created", "star")
    tail = await bus.subscribe(f"{names.prefix}.>", "tail")
    for subject in ("orders.created", "users.created", "orders.created.late"):
        await bus.publish(f"{names.prefix}.{subject}", subject.encode())
    assert sorted(d.text for d in await receive(star, 2)) == ["orders.created", "users.created"]
    assert sorted(d.text for d in await receive(tail, 3)) == ["orders.created", "orders.created.late", "users.created"]
    await nothing_more(star)


async def test_queue_group_members_share_the_work(make_bus: tuple[BusFactory, Names]) -> None:
    factory, names = make_bus
    first_bus = await factory()
    # With NATS, two gateways (connections) share one group; in memory, two members of one bus.
    second_bus = await factory() if isinstance(first_bus, NatsBus) else first_bus
    members = [
        await first_bus.subscribe(f"{names.prefix}.jobs", "workers"),
        await second_bus.subscribe(f"{names.prefix}.jobs", "workers"),
    ]
    seen: list[list[str]] = [[], []]
    all_done = asyncio.Event()

    async def work(index: int) -> None:
        while True:
            delivery = await members[index].next(timeout=1.0)
            if delivery is not None:
                seen[index].append(delivery.text)
                await asyncio.sleep(0.01)  # a busy member leaves work for the other
                await delivery.ack()
                if len(seen[0]) + len(seen[1]) >= 20:
                    all_done.set()

    tasks = [asyncio.create_task(work(i)) for i in range(2)]
    try:
        for i in range(20):
            await first_bus.publish(f"{names.prefix}.jobs", f"job-{i}".encode())
        await asyncio.wait_for(all_done.wait(), 10)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert sorted(seen[0] + seen[1]) == sorted(f"job-{i}" for i in range(20))  # each job exactly once
    assert seen[0] and seen[1], f"one member did all the work: {seen}"


async def test_nak_redelivers_with_the_attempt_counted(make_bus: tuple[BusFactory, Names]) -> None:
    factory, names = make_bus
    bus = await factory()
    sub = await bus.subscribe(f"{names.prefix}.retry", "retrier")
    ack = await bus.publish(f"{names.prefix}.retry", b"again")
    first = await sub.next(timeout=5.0)
    assert first is not None and first.attempt == 1
    await first.nak(delay=0.2)
    assert await sub.next(timeout=0.1) is None  # the delay holds it back
    second = await sub.next(timeout=5.0)
    assert second is not None
    assert (second.event_id, second.attempt, second.text) == (ack.event_id, 2, "again")
    await second.ack()
    await nothing_more(sub)


async def test_unacked_delivery_returns_when_a_member_leaves(make_bus: tuple[BusFactory, Names]) -> None:
    factory, names = make_bus
    bus = await factory(ack_wait=1.0)
    leaving = await bus.subscribe(f"{names.prefix}.handoff", "pair")
    staying = await bus.subscribe(f"{names.prefix}.handoff", "pair")
    await bus.publish(f"{names.prefix}.handoff", b"unfinished")
    taken = await leaving.next(timeout=5.0)
    assert taken is not None
    await leaving.close()  # as if its gateway stopped mid-handling
    [again] = await receive(staying, 1, timeout=8.0)
    assert again.text == "unfinished"
    assert again.event_id == taken.event_id  # the same event, handed to the member that stayed


async def test_duplicate_event_id_is_delivered_once(make_bus: tuple[BusFactory, Names]) -> None:
    factory, names = make_bus
    bus = await factory()
    sub = await bus.subscribe(f"{names.prefix}.once", "dedup")
    first = await bus.publish(f"{names.prefix}.once", b"1", event_id="order-42")
    second = await bus.publish(f"{names.prefix}.once", b"1", event_id="order-42")
    assert (first.duplicate, second.duplicate) == (False, True)
    assert [d.event_id for d in await receive(sub, 1)] == ["order-42"]
    await nothing_more(sub)


async def test_consumer_redelivers_failures_then_dead_letters(make_bus: tuple[BusFactory, Names]) -> None:
    factory, names = make_bus
    bus = await factory()
    dead = await bus.subscribe(f"{names.dead_letter_prefix}.>", "dlq-reader")
    sub = await bus.subscribe(f"{names.prefix}.fragile", "fragile", max_deliver=3)
    attempts: list[int] = []
    succeeded: list[str] = []

    async def handler(delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        if delivery.text == "poison":
            raise ValueError("cannot digest poison")
        succeeded.append(delivery.text)

    consumer = Consumer(bus, sub, handler, RedeliveryPolicy(max_deliver=3, backoff=(0.05, 0.1)))
    consumer.start()
    try:
        poison = await bus.publish(f"{names.prefix}.fragile", b"poison", {"x-session-id": "s-9"})
        await bus.publish(f"{names.prefix}.fragile", b"fine")
        [letter] = await receive(dead, 1, timeout=10)
    finally:
        await consumer.stop()
    body = letter.json()
    assert letter.subject == f"{names.dead_letter_prefix}.{names.prefix}.fragile"
    assert letter.event_id == poison.event_id
    assert letter.headers["x-session-id"] == "s-9"
    assert body["attempts"] == 3
    assert body["consumer"] == "fragile"
    assert body["error"]["message"] == "ValueError: cannot digest poison"
    assert body["data_base64"] == "cG9pc29u"
    assert succeeded == ["fine"]
    assert sorted(attempts) == [1, 1, 2, 3]
    await nothing_more(dead)


async def test_invalid_subjects_are_refused(make_bus: tuple[BusFactory, Names]) -> None:
    factory, names = make_bus
    bus = await factory()
    with pytest.raises(InvalidRequest, match="must start with one of the bus prefixes"):
        await bus.publish("elsewhere.x", b"")
    with pytest.raises(InvalidRequest, match="no wildcards"):
        await bus.publish(f"{names.prefix}.*", b"")
    with pytest.raises(InvalidRequest, match="invalid subject pattern"):
        await bus.subscribe(f"{names.prefix}.>.x", "g")
    with pytest.raises(InvalidRequest, match="invalid event id"):
        await bus.publish(f"{names.prefix}.x", b"", event_id="has spaces")
    with pytest.raises(InvalidRequest, match="invalid event id"):
        await bus.publish(f"{names.prefix}.x", b"", event_id="trailing-newline\n")


async def test_processed_store_remembers_handled_events(make_bus: tuple[BusFactory, Names]) -> None:
    factory, _ = make_bus
    store = (await factory()).processed_store()
    assert await store.get("trigger:event-1") is None
    await store.put("trigger:event-1", json.dumps({"text": "done"}).encode())
    assert json.loads(await store.get("trigger:event-1") or b"") == {"text": "done"}
    # A second gateway on the same backend sees it only with NATS (shared bucket).
    other = (await factory()).processed_store()
    remembered = await other.get("trigger:event-1")
    assert remembered is None if isinstance(store, type(MemoryBus().processed_store())) else remembered is not None


async def test_memory_bus_refuses_events_beyond_its_bound() -> None:
    bus = MemoryBus(["events"], max_pending=3)
    sub = await bus.subscribe("events.>", "slow")
    for i in range(3):
        await bus.publish("events.load", str(i).encode())
    with pytest.raises(BusFull, match=r"3 events waiting for consumer group 'slow'.*bus.max_pending") as caught:
        await bus.publish("events.load", b"3")
    assert caught.value.status == 429 and caught.value.transient
    delivery = await sub.next(timeout=1.0)
    assert delivery is not None and delivery.text == "0"
    await delivery.ack()
    await bus.publish("events.load", b"4")  # room again
    assert [d.text for d in await receive(sub, 3)] == ["1", "2", "4"]
    await bus.close()
