"""Reading caller input on the HTTP front: one place for the 400s a malformed body gets, and
for the whole numbers of queries and headers."""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from agentgateway.v1 import gateway_pb2 as pb
from gateway import json_input, wire, wire_json
from gateway.model import InvalidRequest
from gateway.server.request_keys import MAX_JSON_DEPTH_KEY


async def read_json(request: web.Request, what: str = "request body") -> Any:
    """The decoded body; InvalidRequest (400) when it is not UTF-8 JSON, nests too deep
    or holds an unpaired surrogate (:func:`gateway.json_input.loads`). JSON is UTF-8
    (RFC 8259), whatever charset the content type names."""
    depth = request.app.get(MAX_JSON_DEPTH_KEY, json_input.DEFAULT_MAX_DEPTH)
    return json_input.loads(await request.read(), depth, what)


def invoke_request(data: Any, agent_in_path: str | None) -> wire.InvokeRequestData:
    """An ``InvokeRequest`` body (the direct mapping when it vouches for it, else protobuf's),
    with the agent named by the path when there is one."""
    request = wire_json.invoke_request(data)
    if request is None:
        parsed = pb.InvokeRequest()
        wire.parse_json(data, parsed)
        request = wire.request_data_from_pb(parsed)
    if agent_in_path is None:
        return request
    if request.agent and request.agent != agent_in_path:
        raise InvalidRequest(f"the body names agent {request.agent!r} but the path names {agent_in_path!r}")
    return dataclasses.replace(request, agent=agent_in_path)


def whole_number(raw: str) -> int | None:
    """``raw`` as a non-negative integer in ASCII digits, else None (``str.isdigit`` also
    accepts digits such as "²" that ``int`` refuses)."""
    return int(raw) if raw.isascii() and raw.isdigit() else None


def unreadable_body(error: BaseException) -> InvalidRequest:
    """The 400 for a body aiohttp cannot decode (a Content-Encoding it is not in, broken chunks)."""
    reason = getattr(error, "message", "") or str(error) or type(error).__name__
    return InvalidRequest(f"the request body cannot be read: {reason}")
