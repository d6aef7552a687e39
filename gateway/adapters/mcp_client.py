"""A client of one MCP upstream over Streamable HTTP, speaking 2026-07-28 when the
upstream does (probed once with ``server/discover``) and 2025-11-25 otherwise
(``initialize`` and an ``Mcp-Session-Id``, renewed when the upstream forgets it).

Every request carries the attempt's context headers (trace context, baggage,
deadline) in HTTP headers and in ``_meta``, plus the upstream's configured
credentials; nothing of the gateway's own caller travels. Transport failures
become the model's errors through the shared ``mapped_errors`` boundary, so the
policy chain treats an MCP upstream like any agent.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiohttp

from gateway.model import Attempt, UpstreamError, UpstreamTls, UpstreamUnavailable
from gateway.protocols import mcp
from gateway.protocols.sse import DEFAULT_MAX_EVENT_BYTES, parse_sse
from gateway.transport import (
    MAX_ERROR_BODY_BYTES,
    MAX_JSON_BYTES,
    client_ssl_context,
    client_timeout,
    decode_text,
    mapped_errors,
    read_body,
    status_error,
)

CLIENT_INFO = {"name": "agent-gateway", "version": "0.1.0"}
# What a 2025-11-25 upstream may ask the gateway during a call: relayed to the calling client on the
# call's stream (for a client that cannot answer, the upstream gets ``mcp.refusal``).
RELAYED_CAPABILITIES: dict[str, Any] = {"sampling": {}, "elicitation": {}}
_ACCEPT = "application/json, text/event-stream"


def with_meta(params: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with ``extra`` merged into its ``_meta`` (the caller's own entries kept)."""
    out = dict(params)
    meta = dict(out.get("_meta") or {})
    meta.update(extra)
    out["_meta"] = meta
    return out


class McpHttpUpstream:
    """Requests to one Streamable HTTP MCP server; safe to share between concurrent calls."""

    def __init__(
        self,
        name: str,
        session: aiohttp.ClientSession,
        url: str,
        headers: Mapping[str, str] | None = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        protocol_version: str | None = None,
        tls: UpstreamTls | None = None,
    ) -> None:
        self.name = name
        # The server's `tls:` (its CA, a client certificate, the name to verify), on every request.
        self.ssl: ssl.SSLContext | bool = client_ssl_context(tls) if tls is not None else True
        self.server_hostname = tls.server_name if tls is not None else None
        # A pinned revision skips the probe (None: 2026-07-28 when the upstream speaks it).
        self.pinned = protocol_version
        self.session = session
        self.url = url
        self.static_headers = {k.lower(): v for k, v in (headers or {}).items()}
        self.max_event_bytes = max_event_bytes
        self.version: str | None = None
        self.session_id: str | None = None
        self.server_capabilities: dict[str, Any] = {}
        # Tools' input schemas (from tools/list), for the Mcp-Param-* headers of 2026-07-28 calls.
        self.input_schemas: dict[str, Any] = {}
        self._ready = asyncio.Lock()
        self._ids = itertools.count(1)

    def _trace_meta(self, call: Attempt) -> dict[str, str]:
        return {k: v for k, v in call.headers.items() if k in mcp.TRACE_KEYS}

    def _headers(self, call: Attempt, message: Mapping[str, Any], version: str) -> dict[str, str]:
        headers = {**self.static_headers, **call.headers, "accept": _ACCEPT, "content-type": "application/json"}
        headers.update(mcp.request_headers(message, version))
        params = message.get("params") or {}
        if version == mcp.MODERN and message.get("method") == "tools/call":
            schema = self.input_schemas.get(str(params.get("name")))
            headers.update(mcp.param_headers(schema, params.get("arguments")))
        if self.session_id and version != mcp.MODERN:
            headers[mcp.HEADER_SESSION] = self.session_id
        return headers

    async def _exchange(
        self, call: Attempt, message: dict[str, Any], version: str
    ) -> AsyncIterator[tuple[Mapping[str, str], dict[str, Any]]]:
        """POST one message; yield (response headers, each JSON-RPC message of the answer)."""
        with mapped_errors(self.name):
            async with self.session.post(
                self.url,
                data=json.dumps(message),
                headers=self._headers(call, message, version),
                timeout=client_timeout(call, self.name),
                ssl=self.ssl,
                server_hostname=self.server_hostname,
            ) as response:
                if response.status == 202:
                    return
                if response.status >= 400:
                    raw_error = await read_body(response, MAX_ERROR_BODY_BYTES, self.name, truncate=True)
                    text = decode_text(raw_error)
                    body = _json_or_none(text)
                    modern_error = version == mcp.MODERN and response.status in (400, 404)
                    if isinstance(body, dict) and "error" in body and modern_error:
                        # A modern JSON-RPC error (unsupported version, header mismatch, unknown method): pass it on.
                        yield response.headers, body
                        return
                    raise status_error(self.name, response.status, text, response.headers)
                content_type = response.headers.get("content-type", "")
                if "text/event-stream" in content_type:
                    async for event in parse_sse(response.content.iter_any(), self.max_event_bytes):
                        if event.data.strip():
                            parsed = _json_or_none(event.data)
                            if not isinstance(parsed, dict):
                                raise UpstreamError("the MCP upstream sent a malformed event", agent=self.name)
                            yield response.headers, parsed
                    return
                parsed = _json_or_none(decode_text(await read_body(response, MAX_JSON_BYTES, self.name)))
                if not isinstance(parsed, dict):
                    raise UpstreamError("the MCP upstream sent malformed JSON", agent=self.name)
                yield response.headers, parsed

    async def _single(
        self, call: Attempt, message: dict[str, Any], version: str
    ) -> tuple[Mapping[str, str], dict[str, Any]]:
        answer: tuple[Mapping[str, str], dict[str, Any]] | None = None
        async for headers, item in self._exchange(call, message, version):
            if "id" in item and "method" not in item and item.get("id") == message.get("id"):
                answer = (headers, item)
        if answer is None:
            raise UpstreamUnavailable("the MCP upstream closed the stream before answering", agent=self.name)
        return answer

    async def ensure_ready(self, call: Attempt) -> str:
        """The protocol version spoken with this upstream, negotiating it on first use."""
        if self.version is not None:
            return self.version
        async with self._ready:
            if self.version is None:
                await self._negotiate(call)
            assert self.version is not None
            return self.version

    async def _negotiate(self, call: Attempt) -> None:
        if self.pinned is not None and self.pinned != mcp.MODERN:
            await self._initialize(call)
            return
        probe = {
            "jsonrpc": "2.0",
            "id": f"agw-{next(self._ids)}",
            "method": "server/discover",
            "params": {"_meta": self._modern_meta(call)},
        }
        try:
            _, answer = await self._single(call, probe, mcp.MODERN)
        except UpstreamError as exc:
            if exc.details.get("upstream_status") not in (400, 404, 405):
                raise
            answer = {}
        result = answer.get("result")
        if isinstance(result, dict) and mcp.MODERN in (result.get("supportedVersions") or []):
            self.version = mcp.MODERN
            self.server_capabilities = dict(result.get("capabilities") or {})
            return
        await self._initialize(call)

    def _modern_meta(self, call: Attempt) -> dict[str, Any]:
        return {
            mcp.META_VERSION: mcp.MODERN,
            mcp.META_CLIENT_INFO: CLIENT_INFO,
            mcp.META_CLIENT_CAPABILITIES: {},
            **self._trace_meta(call),
        }

    async def _initialize(self, call: Attempt) -> None:
        self.session_id = None
        message = {
            "jsonrpc": "2.0",
            "id": f"agw-{next(self._ids)}",
            "method": "initialize",
            "params": {
                "protocolVersion": mcp.LEGACY,
                "capabilities": RELAYED_CAPABILITIES,
                "clientInfo": CLIENT_INFO,
            },
        }
        headers, answer = await self._single(call, message, mcp.LEGACY)
        result = answer.get("result")
        if not isinstance(result, dict):
            raise UpstreamError(f"the MCP upstream refused initialize: {answer.get('error')}", agent=self.name)
        self.session_id = headers.get(mcp.HEADER_SESSION)
        version = result.get("protocolVersion")
        self.version = version if isinstance(version, str) else mcp.LEGACY
        self.server_capabilities = dict(result.get("capabilities") or {})
        async for _ in self._exchange(call, mcp.notification("notifications/initialized"), self.version):
            pass

    def _message(self, call: Attempt, method: str, params: Mapping[str, Any], version: str) -> dict[str, Any]:
        meta: dict[str, Any] = self._modern_meta(call) if version == mcp.MODERN else self._trace_meta(call)
        # The capabilities of the client the gateway relays for (what a tool may ask of it) win over its own none.
        asked = dict(params.get("_meta") or {}).get(mcp.META_CLIENT_CAPABILITIES)
        if version == mcp.MODERN and isinstance(asked, Mapping):
            meta[mcp.META_CLIENT_CAPABILITIES] = dict(asked)
        return {"jsonrpc": "2.0", "id": f"agw-{next(self._ids)}", "method": method, "params": with_meta(params, meta)}

    async def stream(self, call: Attempt, method: str, params: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Yield the upstream's notifications for this request as they come, and the requests it makes
        of the gateway meanwhile (2025-11-25 sampling, elicitation: the reader answers each with
        :meth:`respond`, or the upstream waits), then its response (``result`` or ``error``, with the
        gateway's own request id)."""
        version = await self.ensure_ready(call)
        message = self._message(call, method, params, version)
        for renewal in (False, True):
            try:
                async for _, item in self._exchange(call, message, version):
                    if "method" in item:
                        yield item
                    elif item.get("id") == message["id"]:
                        yield item
                        return
                raise UpstreamUnavailable("the MCP upstream closed the stream before answering", agent=self.name)
            except UpstreamError as exc:
                # 2025-11-25: a 404 on a session request means the session is gone; start a new one, once.
                if renewal or version == mcp.MODERN or exc.details.get("upstream_status") != 404 or not self.session_id:
                    raise
                async with self._ready:
                    await self._initialize(call)

    async def request(self, call: Attempt, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """The upstream's response message to one request (notifications on the way are dropped, and
        requests refused: nobody is there to answer them)."""
        final: dict[str, Any] = {}
        async for item in self.stream(call, method, params):
            if "method" in item and "id" in item:
                await self.respond(call, mcp.refusal(item))
            elif "method" not in item:
                final = item
        return final

    async def respond(self, call: Attempt, answer: Mapping[str, Any]) -> None:
        """Answer a request the upstream made during a call (a JSON-RPC response, on its session)."""
        version = await self.ensure_ready(call)
        async for _ in self._exchange(call, dict(answer), version):
            pass

    async def listen(self, call: Attempt, resources: Sequence[str] = ()) -> AsyncIterator[dict[str, Any]]:
        """The upstream's notifications outside any request while the stream lasts: on 2026-07-28 a
        ``subscriptions/listen`` (its acknowledgement dropped) for the list changes, or with ``resources``
        for those resources' updates only; on 2025-11-25 the GET stream (list changes, and the updates of
        what the session subscribed to with ``resources/subscribe``)."""
        version = await self.ensure_ready(call)
        if version == mcp.MODERN:
            filter_: dict[str, Any] = (
                {"resourceSubscriptions": list(resources)}
                if resources
                else {"toolsListChanged": True, "promptsListChanged": True, "resourcesListChanged": True}
            )
            message = self._message(call, "subscriptions/listen", {"notifications": filter_}, version)
            async for _, item in self._exchange(call, message, version):
                if mcp.is_followed_notification(str(item.get("method", ""))):
                    yield item
            return
        headers = {**self.static_headers, **call.headers, "accept": "text/event-stream", mcp.HEADER_VERSION: version}
        if self.session_id:
            headers[mcp.HEADER_SESSION] = self.session_id
        with mapped_errors(self.name):
            async with self.session.get(
                self.url,
                headers=headers,
                timeout=client_timeout(call, self.name),
                ssl=self.ssl,
                server_hostname=self.server_hostname,
            ) as response:
                if response.status >= 400:
                    raise status_error(self.name, response.status, "", response.headers)
                async for event in parse_sse(response.content.iter_any(), self.max_event_bytes):
                    pushed = _json_or_none(event.data) if event.data.strip() else None
                    if isinstance(pushed, dict) and mcp.is_followed_notification(str(pushed.get("method", ""))):
                        yield pushed

    async def aclose(self) -> None:
        """End a 2025-11-25 session politely (DELETE); errors do not matter here."""
        if self.session_id is None:
            return
        headers = {**self.static_headers, mcp.HEADER_SESSION: self.session_id}
        if self.version:
            headers[mcp.HEADER_VERSION] = self.version
        try:
            async with self.session.delete(
                self.url,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=2),
                ssl=self.ssl,
                server_hostname=self.server_hostname,
            ):
                pass
        except (aiohttp.ClientError, TimeoutError):
            pass
        self.session_id = None


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None
