"""Keys the HTTP front's middlewares leave on the app and on each request for its handlers."""

from __future__ import annotations

from aiohttp import web

from gateway.model import CallRecord
from gateway.security.guard import ListenerGuard
from gateway.security.identity import Identity

GUARD_KEY = web.AppKey("guard", ListenerGuard)
REQUEST_ID_KEY = web.RequestKey("request_id", str)
IDENTITY_KEY = web.RequestKey("identity", Identity)
# Inbound headers as the gateway believes them (lower-case; identity headers settled by the guard).
HEADERS_KEY = web.RequestKey("headers", dict)
# What the policies did for the call being served, for the x-agw-attempts header of any answer.
RECORD_KEY = web.RequestKey("record", CallRecord)
