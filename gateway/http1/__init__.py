"""A lean HTTP/1.1 client for the gateway's hot path: the upstream request of every call.

Why hand-written: aiohttp's ``ClientSession`` costs about 240 us of CPU per proxied call
(issue 19: per-call URL parsing, request/response objects with many features, timer and
tracing machinery, a connector built for every case). This client does what the gateway
needs and nothing else: an asyncio protocol feeding httptools' response parser (llhttp,
the parser Node.js uses, so framing, chunked bodies and request-smuggling defences are not
ours), a bounded keep-alive pool per origin with idle expiry, TLS with the agent's own
context, server name and client certificate, and a body read chunk by chunk as it arrives.

What it leaves out, on purpose: proxies, redirects, cookies, authentication from URL
credentials, HTTP/2, pipelining. Where those are needed aiohttp's client stays (the config's
``server.upstream_client: aiohttp`` puts every upstream request back on it).

It is checked against aiohttp's client byte for byte and error for error by
``tests/http1/test_differential.py``: the same requests through both, against real aiohttp
servers and the fault upstream (trickles, stalls after the head, resets mid-body, lying
Content-Lengths).
"""

from gateway.http1.client import Exchange, Http1Client
from gateway.http1.errors import (
    ConnectFailed,
    ConnectionLost,
    Http1Error,
    IncompleteBody,
    RequestBodyFailed,
    ResponseMalformed,
)
from gateway.http1.response import Http1Response

__all__ = [
    "ConnectFailed",
    "ConnectionLost",
    "Exchange",
    "Http1Client",
    "Http1Error",
    "Http1Response",
    "IncompleteBody",
    "RequestBodyFailed",
    "ResponseMalformed",
]
