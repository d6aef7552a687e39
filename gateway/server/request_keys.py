"""Keys the HTTP front's middlewares leave on the app and on each request for its handlers."""

from __future__ import annotations

from aiohttp import web

from gateway.model import CallRecord
from gateway.security.guard import ListenerGuard
from gateway.security.identity import Identity
from gateway.server.drain import Drain

GUARD_KEY = web.AppKey("guard", ListenerGuard)
DRAIN_KEY = web.AppKey("drain", Drain)
REQUEST_ID_KEY = web.RequestKey("request_id", str)
IDENTITY_KEY = web.RequestKey("identity", Identity)
# Inbound headers as the gateway believes them (lower-case; identity headers settled by the guard).
HEADERS_KEY = web.RequestKey("headers", dict)
# What the policies did for the call being served, for the x-agw-attempts header of any answer.
RECORD_KEY = web.RequestKey("record", CallRecord)
# The response a handler has prepared (headers sent): after it, an error can only cut the connection.
STARTED_KEY = web.RequestKey("started_response", web.StreamResponse)
# How deep caller JSON may nest on this listener (listeners.http.max_json_depth).
MAX_JSON_DEPTH_KEY = web.AppKey("max_json_depth", int)
