"""Keys the HTTP front's middlewares leave on the app and on each request for its handlers."""

from __future__ import annotations

from aiohttp import web

from gateway.security.guard import ListenerGuard
from gateway.security.identity import Identity

GUARD_KEY = web.AppKey("guard", ListenerGuard)
REQUEST_ID_KEY = web.RequestKey("request_id", str)
IDENTITY_KEY = web.RequestKey("identity", Identity)
# Inbound headers as the gateway believes them (lower-case; identity headers settled by the guard).
HEADERS_KEY = web.RequestKey("headers", dict)
# How deep caller JSON may nest on this listener (listeners.http.max_json_depth).
MAX_JSON_DEPTH_KEY = web.AppKey("max_json_depth", int)
