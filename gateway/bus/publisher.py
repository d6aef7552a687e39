"""Publishing on the bus in a PRODUCER span whose trace context travels in the event headers."""

from __future__ import annotations

from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from gateway.bus.base import EventBus, PublishAck
from gateway.model import JSON, Context, GatewayError
from gateway.propagation import TIMEOUT_MS, outbound_headers

ATTR_SYSTEM = "messaging.system"
ATTR_DESTINATION = "messaging.destination.name"
ATTR_MESSAGE_ID = "messaging.message.id"


class EventPublisher:
    """Publishes events in a PRODUCER span whose context travels in the event headers."""

    def __init__(self, bus: EventBus, tracer: Tracer) -> None:
        self.bus = bus
        self.tracer = tracer

    async def publish(
        self, subject: str, data: bytes | JSON, context: Context, event_id: str | None = None
    ) -> PublishAck:
        self.bus.check_publish_subject(subject)
        with self.tracer.start_as_current_span(
            f"publish {subject}",
            kind=SpanKind.PRODUCER,
            attributes={ATTR_SYSTEM: self.bus.backend, ATTR_DESTINATION: subject},
        ) as span:
            headers = outbound_headers(context)
            # An event is handled later, on its own deadline; it keeps the ids and the trace.
            headers.pop(TIMEOUT_MS, None)
            try:
                ack = await self.bus.publish(subject, data, headers, event_id)
            except GatewayError as exc:
                span.set_status(Status(StatusCode.ERROR, exc.message))
                raise
            span.set_attribute(ATTR_MESSAGE_ID, ack.event_id)
            if ack.duplicate:
                span.set_attribute("agent_gateway.event.duplicate", True)
            return ack
