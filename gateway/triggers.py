"""Event-driven flows: triggers consume events from the bus and invoke agents.

A trigger subscribes its consumer group to a subject pattern. Each event
becomes an ordinary routed invocation (so routes, policies and tracing apply)
whose input is rendered from the event with the workflow template language;
the result may be published to another subject, so agents chain through
events. Delivery is at least once (see :mod:`gateway.bus.consumer`).

Idempotency: the key of a handled event is ``<trigger>:<event id>``. After the
agent answers, the trigger records the key (with the payload it publishes) in
the bus's processed store *before* acknowledging. A redelivery of a key
already recorded (the ack was lost, the gateway died in between) does not
invoke the agent again; it re-publishes the recorded result under the same
derived event id, which the bus deduplicates. A redelivery can only invoke
twice when the gateway died while the agent was running, which is what at
least once means.

Tracing: the publisher's ``traceparent`` and ``baggage`` travel in the event
headers; the trigger's CONSUMER span is a child of the publishing PRODUCER
span, so a chain of agents through events is one trace. The hop count travels
in the baggage too, so a trigger loop ends at ``server.max_hops``, and so do the
request tree and its call count (:mod:`gateway.call_budget`): an event handled
continues the tree of the call that published it, within ``server.max_calls``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from gateway.bus.base import Delivery, EventBus
from gateway.bus.build import build_bus
from gateway.bus.consumer import Consumer, RedeliveryPolicy
from gateway.bus.publisher import ATTR_DESTINATION, ATTR_MESSAGE_ID, ATTR_SYSTEM, EventPublisher
from gateway.config.schema import GatewayConfig, Redelivery, Trigger
from gateway.invoker import Invoker
from gateway.model import JSON, Context, DataPart, GatewayError, Invocation, Result
from gateway.propagation import (
    CALLS_BAGGAGE,
    HOPS_BAGGAGE,
    REQUEST_ID,
    TIMEOUT_MS,
    TREE_BAGGAGE,
    context_from_headers,
    otel_parent,
)
from gateway.template import Template, message_for, output_record

log = logging.getLogger("agent_gateway.events")

ATTR_GROUP = "messaging.consumer.group.name"
ATTR_DELIVERY = "messaging.message.delivery_attempt"
ATTR_TRIGGER = "agent_gateway.trigger"


def _policy(config: Redelivery) -> RedeliveryPolicy:
    return RedeliveryPolicy(config.max_deliver, tuple(config.backoff))


def derived_event_id(trigger: str, event_id: str) -> str:
    """The id of the event a trigger publishes for ``event_id``: the same on every redelivery."""
    return hashlib.sha256(f"{trigger}:{event_id}".encode()).hexdigest()[:32]


class TriggerHandler:
    """Handles one trigger's deliveries: render the input, invoke, record, publish."""

    def __init__(self, config: Trigger, bus: EventBus, caller: Invoker, publisher: EventPublisher, tracer: Tracer):
        self.config = config
        self.name = config.name
        self.bus = bus
        self.caller = caller
        self.publisher = publisher
        self.tracer = tracer
        self.input = Template(config.input)
        self.output = Template(config.output)

    def _document(self, delivery: Delivery, context: Context, **extra: Any) -> dict[str, Any]:
        return {
            "event": {
                "subject": delivery.subject,
                "id": delivery.event_id,
                "data": delivery.json(),
                "text": delivery.text,
                "attempt": delivery.attempt,
                "headers": dict(delivery.headers),
            },
            "context": {
                "session_id": context.session_id,
                "thread_id": context.thread_id,
                "user_id": context.user_id,
                "request_id": context.request_id,
            },
            **extra,
        }

    async def __call__(self, delivery: Delivery) -> None:
        headers = {k.lower(): v for k, v in delivery.headers.items()}
        headers.pop(TIMEOUT_MS, None)
        headers.pop(REQUEST_ID, None)  # each handling is a request of its own
        context = context_from_headers(headers, timeout=self.config.timeout)
        if TREE_BAGGAGE not in context.baggage:
            # An event from outside starts a tree; what its handling publishes continues it.
            tree = derived_event_id(self.name, delivery.event_id)
            context = dataclasses.replace(context, baggage={**context.baggage, TREE_BAGGAGE: tree})
        attributes: dict[str, str | int] = {
            ATTR_SYSTEM: self.bus.backend,
            ATTR_DESTINATION: delivery.subject,
            ATTR_MESSAGE_ID: delivery.event_id,
            ATTR_GROUP: self.config.group or self.name,
            ATTR_DELIVERY: delivery.attempt,
            ATTR_TRIGGER: self.name,
        }
        with self.tracer.start_as_current_span(
            f"event {self.name}",
            context=otel_parent(headers, context),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            record_exception=False,
        ) as span:
            try:
                await self._handle(delivery, headers, context, span)
            except GatewayError as exc:
                span.set_status(Status(StatusCode.ERROR, exc.message))
                raise

    async def _handle(self, delivery: Delivery, headers: Mapping[str, str], context: Context, span: trace.Span) -> None:
        store = self.bus.processed_store()
        key = f"{self.name}:{delivery.event_id}"
        recorded = await store.get(key)
        if recorded is not None:
            span.set_attribute("agent_gateway.event.already_processed", True)
            log.info("trigger %s: event %s was already handled; not invoking again", self.name, delivery.event_id)
            if self.config.publish is not None:
                await self._publish(json.loads(recorded), delivery, context)
            return
        value = self.input.render(self._document(delivery, context))
        invocation = Invocation(self.config.agent, (message_for(value),), context, headers=dict(headers))
        result = await self.caller.invoke(invocation)
        if invocation.record.tree_calls:
            calls = str(invocation.record.tree_calls)
            context = dataclasses.replace(context, baggage={**context.baggage, CALLS_BAGGAGE: calls})
        payload: JSON = None
        if self.config.publish is not None:
            payload = self.output.render(self._document(delivery, context, result=output_record(result)))
        await store.put(key, json.dumps(payload).encode())
        if self.config.publish is not None:
            await self._publish(payload, delivery, context)

    async def _publish(self, payload: JSON, delivery: Delivery, context: Context) -> None:
        assert self.config.publish is not None
        raw = context.baggage.get(HOPS_BAGGAGE, "0")
        hops = int(raw) + 1 if raw.isdigit() else 1
        onward = Context(
            session_id=context.session_id,
            thread_id=context.thread_id,
            user_id=context.user_id,
            request_id=context.request_id,
            baggage={**context.baggage, HOPS_BAGGAGE: str(hops)},
        )
        await self.publisher.publish(
            self.config.publish, payload, onward, derived_event_id(self.name, delivery.event_id)
        )


class EventRuntime:
    """The bus, the publisher and the triggers' consumers of one gateway."""

    def __init__(self, config: GatewayConfig, caller: Invoker, tracer: Tracer) -> None:
        self.config = config
        self.caller = caller
        self.tracer = tracer
        self.bus = build_bus(config.bus)
        self.publisher = EventPublisher(self.bus, tracer)
        self.consumers: list[Consumer] = []

    async def publish_completion(self, subject: str, invocation: Invocation, result: Result) -> None:
        """A route's answer as an event where its config says (``routes[].publish``); the call succeeded
        whatever happens here (failures are logged)."""
        data = result.messages[-1].parts if result.messages else ()
        payload = {
            "agent": result.agent,
            "route": invocation.record.route,
            "text": result.text,
            "data": next((p.data for p in data if isinstance(p, DataPart)), None),
            "requestId": invocation.context.request_id,
        }
        event_id = (
            f"{invocation.context.request_id}:{invocation.record.route}" if invocation.context.request_id else None
        )
        try:
            await self.publisher.publish(subject, payload, invocation.context, event_id)
        except GatewayError as exc:
            log.error("could not publish the answer of route %s on %s: %s", invocation.record.route, subject, exc)

    async def start(self) -> None:
        await self.bus.start()
        # A gateway whose ack_wait is long should still show it is alive well before it passes.
        keepalive = self.config.bus.ack_wait / 2 if self.bus.backend == "nats" else None
        try:
            for trigger in self.config.triggers:
                policy = _policy(trigger.redelivery or self.config.bus.redelivery)
                subscription = await self.bus.subscribe(
                    trigger.subject, trigger.group or trigger.name, max_deliver=policy.max_deliver
                )
                handler = TriggerHandler(trigger, self.bus, self.caller, self.publisher, self.tracer)
                consumer = Consumer(
                    self.bus,
                    subscription,
                    handler,
                    policy,
                    name=trigger.name,
                    concurrency=trigger.concurrency,
                    keepalive=keepalive,
                )
                consumer.start()
                self.consumers.append(consumer)
        except BaseException:
            await self.aclose(0)
            raise

    async def aclose(self, grace: float = 0.0) -> None:
        """Stop pulling events, give running handlers ``grace`` seconds, close the bus."""
        await asyncio.gather(*(c.stop(grace) for c in self.consumers), return_exceptions=True)
        self.consumers.clear()
        await self.bus.close()
