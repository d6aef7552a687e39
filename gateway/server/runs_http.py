"""The HTTP front of background runs.

    POST /v1/runs                        body as for /v1/invoke (+ optional "webhookUrl") -> 202 Run
    POST /v1/agents/{agent}/runs         the same, agent from the path
    GET  /v1/runs/{id}                   Run (status, timestamps, last sequence id, error)
    GET  /v1/runs/{id}/result            200 InvokeResponse; 202 Run while it runs; the run's error status
    GET  /v1/runs?sessionId=&pageSize=&pageToken=   {"runs": [...], "nextPageToken": ...}
    POST /v1/runs/{id}/cancel            Run (status "cancelled" once the upstream run was cancelled)
    GET  /v1/runs/{id}/events            SSE like /v1/stream; resumes after Last-Event-ID (or ?after=)

Bodies are the JSON mapping of ``agentgateway.v1`` messages (runs.proto). A
run is visible to the identity that submitted it only; others get 404.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from agentgateway.v1 import gateway_pb2 as pb
from gateway import wire
from gateway.model import GatewayError, InvalidRequest
from gateway.propagation import REQUEST_ID, SESSION_ID
from gateway.protocols.sse import format_sse
from gateway.runs.manager import RunManager, RunNotFinished
from gateway.runs.messages import error_body, result_pb, run_json
from gateway.runs.store import RunRecord, StoredEvent
from gateway.server.disconnect import caller_gone
from gateway.server.http import GATEWAY_KEY
from gateway.server.inbound import http_span, inbound_call, server_span
from gateway.server.json_body import invoke_request, read_json, whole_number
from gateway.server.relay import Relay
from gateway.server.request_keys import DRAIN_KEY, GUARD_KEY, HEADERS_KEY, IDENTITY_KEY, REQUEST_ID_KEY
from gateway.server.sse_writer import KEEPALIVE_FRAME, SSE_HEADERS
from gateway.server.steps_view import StepsView

RUNS_KEY = web.AppKey("runs", RunManager)
KEEPALIVE_KEY = web.AppKey("runs_sse_keepalive", float)
LAST_EVENT_ID = "last-event-id"
# How often a client polling /result is told to come back (Retry-After).
POLL_AFTER_SECONDS = 1


def _owner(request: web.Request) -> str:
    return request[IDENTITY_KEY].name


async def _body(request: web.Request) -> tuple[wire.InvokeRequestData, str]:
    data = await read_json(request)
    webhook = data.pop("webhookUrl", "") if isinstance(data, dict) else ""
    if not isinstance(webhook, str):
        raise InvalidRequest("'webhookUrl' must be a string (an http:// or https:// URL)")
    return invoke_request(data, request.match_info.get("agent")), webhook


async def submit(request: web.Request) -> web.Response:
    runs = request.app[RUNS_KEY]
    body, webhook = await _body(request)
    guard, identity = request.app[GUARD_KEY], request[IDENTITY_KEY]
    headers: dict[str, str] = request[HEADERS_KEY]
    inbound = inbound_call(body, headers, guard, identity)
    invocation = inbound.invocation
    request[REQUEST_ID_KEY] = invocation.context.request_id
    guard.authorize(identity, invocation.agent)
    name, attributes = http_span(request)
    with server_span(runs.gateway.tracer, name, inbound.parent, invocation.context, attributes) as span:
        view = StepsView(request.app[GATEWAY_KEY], guard, identity)
        record = await runs.submit(invocation, _owner(request), webhook, view)
        span.set_attribute("agent_gateway.run_id", record.run_id)
    return web.json_response(
        run_json(record),
        status=202,
        headers={"location": f"/v1/runs/{record.run_id}", REQUEST_ID: invocation.context.request_id},
    )


async def get_run(request: web.Request) -> web.Response:
    record = await request.app[RUNS_KEY].get(request.match_info["run_id"], _owner(request))
    return web.json_response(run_json(record))


async def get_result(request: web.Request) -> web.Response:
    runs = request.app[RUNS_KEY]
    try:
        record = await runs.result(request.match_info["run_id"], _owner(request))
    except RunNotFinished:
        pending = await runs.get(request.match_info["run_id"], _owner(request))
        return web.json_response(run_json(pending), status=202, headers={"retry-after": str(POLL_AFTER_SECONDS)})
    if record.result is not None:
        return web.json_response(wire.to_json(result_pb(record)))
    status, body = error_body(record)
    return web.json_response(body, status=status)


def _int_query(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if (number := whole_number(raw)) is None:
        raise InvalidRequest(f"'{name}' must be a non-negative integer, got {raw[:40]!r}")
    return number


async def list_runs(request: web.Request) -> web.Response:
    headers: dict[str, str] = request[HEADERS_KEY]
    session_id = request.query.get("sessionId") or headers.get(SESSION_ID, "")
    if not session_id:
        raise InvalidRequest("name the session: ?sessionId=... (or send x-session-id)")
    page = await request.app[RUNS_KEY].list_session(
        session_id,
        _owner(request),
        before=request.query.get("pageToken", ""),
        limit=_int_query(request, "pageSize", 50),
    )
    body: dict[str, Any] = {"runs": [run_json(r) for r in page.runs]}
    if page.next_before:
        body["nextPageToken"] = page.next_before
    return web.json_response(body)


async def cancel_run(request: web.Request) -> web.Response:
    record = await request.app[RUNS_KEY].cancel(request.match_info["run_id"], _owner(request))
    return web.json_response(run_json(record))


def _resume_after(request: web.Request) -> int:
    last = request.headers.get(LAST_EVENT_ID, "").strip()
    if last:
        if (number := whole_number(last)) is None:
            raise InvalidRequest(f"Last-Event-ID must be an event's sequence id, got {last[:40]!r}")
        return number
    return _int_query(request, "after", 0)


async def events(request: web.Request) -> web.StreamResponse:
    """SSE: ``event: event`` with ``id: <sequence>`` per event, then ``event: result`` or ``event: error``."""
    runs = request.app[RUNS_KEY]
    run_id = request.match_info["run_id"]
    after = _resume_after(request)
    owner = _owner(request)
    # Checked before the response starts, so an unknown run is a proper 404.
    await runs.get(run_id, owner)
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    # A follower that leaves ends its follow at once; the run goes on.
    relay = Relay(
        runs.follow(run_id, owner, after), _FollowSse(), cancels=True, caller_gone=lambda: caller_gone(request)
    )
    keepalive = request.app[KEEPALIVE_KEY] or None
    await relay.serve(response.write, keepalive=(keepalive, KEEPALIVE_FRAME), drain=request.app[DRAIN_KEY])
    await response.write_eof()
    return response


class _FollowSse:
    """A run's stored events as SSE, then its result or error (the run's last item)."""

    def event(self, item: StoredEvent | RunRecord) -> bytes:
        return _frame(item)

    def end(self) -> None:
        return None

    def error(self, error: GatewayError) -> bytes:
        # Headers are gone: the error travels as the stream's last event.
        return format_sse(json.dumps(wire.error_json(error)), "error")


def _frame(item: StoredEvent | RunRecord) -> bytes:
    if isinstance(item, StoredEvent):
        # The stored event is already the JSON of Event: wrap it as an InvokeStreamResponse without re-encoding.
        return format_sse(f'{{"event":{item.payload}}}', "event", str(item.sequence))
    if item.result is not None:
        final = pb.InvokeStreamResponse(result=result_pb(item))
        return format_sse(json.dumps(wire.to_json(final)), "result")
    _, body = error_body(item)
    return format_sse(json.dumps(body), "error")


def add_run_routes(app: web.Application, runs: RunManager, sse_keepalive: float | None) -> None:
    app[RUNS_KEY] = runs
    app[KEEPALIVE_KEY] = sse_keepalive or 0.0
    app.router.add_post("/v1/runs", submit)
    app.router.add_post("/v1/agents/{agent}/runs", submit)
    app.router.add_get("/v1/runs", list_runs)
    app.router.add_get("/v1/runs/{run_id}", get_run)
    app.router.add_get("/v1/runs/{run_id}/result", get_result)
    app.router.add_post("/v1/runs/{run_id}/cancel", cancel_run)
    app.router.add_get("/v1/runs/{run_id}/events", events)
