"""HTTP publishing: ``POST /v1/events/{subject}`` with a JSON body answers the event id.

An ``x-event-id`` (or ``idempotency-key``) header names the event, so a client
retrying a publish does not publish twice. The trace context and ids of the
request travel with the event to the triggers it fires.
"""

from __future__ import annotations

from aiohttp import web

from gateway.propagation import REQUEST_ID, context_from_headers
from gateway.server.inbound import http_span, server_span
from gateway.server.json_body import read_json
from gateway.server.request_keys import GUARD_KEY, HEADERS_KEY, IDENTITY_KEY, REQUEST_ID_KEY
from gateway.triggers import EventRuntime

EVENTS_KEY = web.AppKey("events", EventRuntime)
EVENT_ID_HEADERS = ("x-event-id", "idempotency-key")


async def publish_event(request: web.Request) -> web.Response:
    runtime = request.app[EVENTS_KEY]
    headers: dict[str, str] = request[HEADERS_KEY]  # as the listener's guard believes them
    context = context_from_headers(headers)
    request[REQUEST_ID_KEY] = context.request_id
    subject = request.match_info["subject"]
    request.app[GUARD_KEY].authorize_publish(request[IDENTITY_KEY], subject)
    data = await read_json(request, "event body") if request.can_read_body else None
    event_id = next((headers[h] for h in EVENT_ID_HEADERS if headers.get(h)), None)
    name, attributes = http_span(request)
    with server_span(runtime.tracer, name, headers, context, attributes):
        ack = await runtime.publisher.publish(subject, data, context, event_id)
    body = {"eventId": ack.event_id, "subject": subject, "duplicate": ack.duplicate, "requestId": context.request_id}
    return web.json_response(body, status=202, headers={REQUEST_ID: context.request_id})


def add_event_routes(app: web.Application, runtime: EventRuntime) -> None:
    app[EVENTS_KEY] = runtime
    app.router.add_post("/v1/events/{subject}", publish_event)
