"""Shared HTTP mechanics for every HTTP-speaking adapter.

One place turns the HTTP client's exceptions and upstream statuses into the model's
errors (transient or permanent), applies the call's remaining deadline, sends
the context headers, and parses JSON and SSE replies. Adapters stay thin.

Two clients send the one request of :meth:`HttpTransport.open`: the lean HTTP/1.1 client
(:mod:`gateway.http1`, the default: :func:`lean_transports`) and aiohttp's ``ClientSession``
(``server.upstream_client: aiohttp``, and whatever the lean one does not do).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import ssl
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Protocol, TypeVar

import aiohttp

from gateway.http1 import (
    ConnectFailed,
    ConnectionLost,
    Http1Client,
    Http1Error,
    IncompleteBody,
)
from gateway.model import (
    Attempt,
    GatewayError,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamTls,
    UpstreamUnavailable,
)
from gateway.protocols.sse import DEFAULT_MAX_EVENT_BYTES, SseEvent, SseParser, SseProtocolError

MAX_JSON_BYTES = 32 * 1024 * 1024
# An error reply is read this far (whole when shorter); the rest is dropped with the connection.
MAX_ERROR_BODY_BYTES = 64 * 1024
# What an SSE stream yields once converted (an adapter's event type).
E = TypeVar("E")
# Statuses worth retrying (Envoy's retriable-status-codes defaults plus 408/429).
TRANSIENT_STATUSES = frozenset({408, 429, 502, 503, 504})


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    delta = (moment - datetime.datetime.now(moment.tzinfo)).total_seconds()
    return max(0.0, delta)


def status_error(agent: str, status: int, body: str, headers: Mapping[str, str]) -> UpstreamError:
    """The model error for a non-2xx upstream reply. The body (it may hold a traceback) goes on
    ``upstream_body`` for the adapter and the failure log, not into the caller-visible details."""
    details = {"upstream_status": status}
    message = f"agent answered HTTP {status}"
    error: UpstreamError
    if status in (408, 504):
        error = UpstreamTimeout(message, agent=agent, details=details)
    elif status in TRANSIENT_STATUSES:
        retry_after = retry_after_seconds(headers.get("retry-after"))
        error = UpstreamUnavailable(message, agent=agent, details=details, retry_after=retry_after)
    elif 400 <= status < 500:
        error = UpstreamRejected(message, agent=agent, details=details)
    else:
        error = UpstreamError(message, agent=agent, details=details)
    error.upstream_body = body
    return error


class ByteStream(Protocol):
    def iter_any(self) -> AsyncIterator[bytes]: ...


class UpstreamResponse(Protocol):
    """What the transport reads of a response: aiohttp's ``ClientResponse``, or a mock's reply."""

    @property
    def status(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def content_length(self) -> int | None: ...
    @property
    def content(self) -> ByteStream: ...


async def read_body(response: UpstreamResponse, limit: int, agent: str, *, truncate: bool = False) -> bytes:
    """The whole body of ``response``, at most ``limit`` bytes: the one bounded reader.

    ``StreamReader.read(n)`` returns what has arrived so far, so the body is gathered chunk by
    chunk until its end. A declared Content-Length over ``limit`` is refused before reading, a
    body growing past it as bytes arrive; with ``truncate`` (error bodies, kept for the log)
    reading just stops at ``limit`` instead. A trickle or a stall runs into the request's
    timeout (``TimeoutError``); a close before the end, or fewer bytes than Content-Length
    said, raises ``ClientPayloadError``: ``mapped_errors`` makes them the model's errors.
    """
    declared = response.content_length
    if declared is not None and declared > limit and not truncate:
        raise UpstreamError(f"the agent's reply declares {declared} bytes, over the {limit}-byte limit", agent=agent)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > limit:
            if truncate:
                chunks.append(chunk[: len(chunk) - (size - limit)])
                break
            raise UpstreamError(f"the agent's reply exceeded {limit} bytes", agent=agent)
        chunks.append(chunk)
    return b"".join(chunks)


def decode_text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


@contextlib.contextmanager
def mapped_errors(agent: str) -> Iterator[None]:
    """Map transport exceptions to the model's errors (the one boundary for aiohttp and the lean client)."""
    try:
        yield
    except GatewayError:
        raise
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise UpstreamTimeout("the agent did not answer in time", agent=agent) from exc
    except ConnectFailed as exc:
        raise UpstreamUnavailable(
            f"cannot connect to the agent: {exc.os_error.strerror or exc}", agent=agent, reached=False
        ) from exc
    except (ConnectionLost, IncompleteBody) as exc:
        raise UpstreamUnavailable(f"the connection to the agent broke: {type(exc).__name__}", agent=agent) from exc
    except Http1Error as exc:
        raise UpstreamUnavailable(f"HTTP error talking to the agent: {type(exc).__name__}", agent=agent) from exc
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamUnavailable(
            f"cannot connect to the agent: {exc.os_error.strerror or exc}", agent=agent, reached=False
        ) from exc
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError) as exc:
        raise UpstreamUnavailable(f"the connection to the agent broke: {type(exc).__name__}", agent=agent) from exc
    except SseProtocolError as exc:
        raise UpstreamError(f"malformed event stream from the agent: {exc}", agent=agent) from exc
    except aiohttp.ClientError as exc:
        raise UpstreamUnavailable(f"HTTP error talking to the agent: {type(exc).__name__}", agent=agent) from exc


def remaining_time(call: Attempt, agent: str = "") -> float | None:
    """Seconds left for the call's request (None: no limit); raises when none are left."""
    remaining = call.timeout()
    if remaining is not None and remaining <= 0:
        # aiohttp reads total=0 as "no limit": a spent deadline must fail here instead.
        raise UpstreamTimeout("the deadline passed before the agent was called", agent=agent)
    return remaining


def client_timeout(call: Attempt, agent: str = "") -> aiohttp.ClientTimeout:
    remaining = remaining_time(call, agent)
    # No deadline means no total limit (long runs are legitimate); connecting is always bounded.
    return aiohttp.ClientTimeout(total=remaining, sock_connect=min(remaining or 10.0, 10.0))


def client_ssl_context(tls: UpstreamTls) -> ssl.SSLContext:
    """Verify the agent against ``ca_file`` (system CAs without it); present a client certificate if given."""
    context = ssl.create_default_context(cafile=tls.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.cert_file and tls.key_file:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    return context


class HttpTransport:
    """JSON and SSE requests to one agent, with its base URL and static headers."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        agent: str,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        tls: UpstreamTls | None = None,
    ) -> None:
        self.session = session
        self.agent = agent
        self.base_url = base_url.rstrip("/")
        self.static_headers = dict(headers or {})
        self.max_event_bytes = max_event_bytes
        # True: aiohttp's default verification with the system CAs.
        self.ssl: ssl.SSLContext | bool = client_ssl_context(tls) if tls is not None else True
        self.server_hostname = tls.server_name if tls is not None else None

    def url(self, path: str) -> str:
        return path if "://" in path else f"{self.base_url}/{path.lstrip('/')}"

    def _headers(self, call: Attempt, extra: Mapping[str, str] | None) -> dict[str, str]:
        return {**self.static_headers, **call.headers, **(extra or {})}

    def open(
        self, call: Attempt, method: str, url: str, body: Any, headers: Mapping[str, str]
    ) -> AbstractAsyncContextManager[UpstreamResponse]:
        """The one request this transport sends (with its TLS settings and the call's deadline);
        :class:`gateway.adapters.mock_upstream.MockUpstream` answers it from a function instead."""
        return self.session.request(
            method,
            url,
            json=body,
            headers=headers,
            timeout=client_timeout(call, self.agent),
            ssl=self.ssl,
            server_hostname=self.server_hostname,
        )

    async def request_json(
        self,
        call: Attempt,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        allow_statuses: frozenset[int] = frozenset(),
    ) -> tuple[int, Any]:
        """Send JSON (when ``body`` is not None) and return (status, decoded JSON or None)."""
        with mapped_errors(self.agent):
            async with self.open(call, method, self.url(path), body, self._headers(call, headers)) as response:
                if response.status >= 400 and response.status not in allow_statuses:
                    raw = await read_body(response, MAX_ERROR_BODY_BYTES, self.agent, truncate=True)
                    raise status_error(self.agent, response.status, decode_text(raw), response.headers)
                text = decode_text(await read_body(response, MAX_JSON_BYTES, self.agent))
                if not text.strip():
                    return response.status, None
                try:
                    return response.status, json.loads(text)
                except json.JSONDecodeError:
                    if "json" in response.headers.get("content-type", ""):
                        error = UpstreamError("the agent sent malformed JSON", agent=self.agent)
                        error.upstream_body = text[:MAX_ERROR_BODY_BYTES]
                        raise error from None
                    return response.status, text

    def stream_sse(
        self,
        call: Attempt,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[SseEvent]:
        """Open an SSE stream and yield its events as they arrive (no buffering)."""
        return self.stream_sse_as(_as_is, call, method, path, body, headers=headers)

    async def stream_sse_as(
        self,
        convert: Callable[[SseEvent], E],
        call: Attempt,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[E]:
        """:meth:`stream_sse` with each event converted here (an adapter's mapping, without a
        generator of its own around this one: every layer costs each event)."""
        sse_headers = {"accept": "text/event-stream", **self._headers(call, headers)}
        with mapped_errors(self.agent):
            opened = self.open(call, method, self.url(path), body, sse_headers)
            del body, sse_headers  # the request holds them: not this frame, for the stream's life
            async with opened as response:
                if response.status >= 400:
                    raw = await read_body(response, MAX_ERROR_BODY_BYTES, self.agent, truncate=True)
                    raise status_error(self.agent, response.status, decode_text(raw), response.headers)
                content_type = response.headers.get("content-type", "")
                if "text/event-stream" not in content_type:
                    raise UpstreamError(
                        f"expected an event stream, the agent sent {content_type or 'no content type'}",
                        agent=self.agent,
                    )
                # parse_sse's loop, inline: one async generator less for every event.
                parser = SseParser(self.max_event_bytes)
                async for chunk in response.content.iter_any():
                    for event in parser.feed(chunk):
                        yield convert(event)


def _as_is(event: SseEvent) -> SseEvent:
    return event


# What aiohttp's client would add to an adapter's request, less Accept-Encoding: replies come
# uncompressed (a compressed one is still decoded).
_LEAN_DEFAULT_HEADERS = {"accept": "*/*", "user-agent": "agent-gateway"}


class LeanHttpTransport(HttpTransport):
    """:class:`HttpTransport` sending through the lean HTTP/1.1 client (``client``, set by
    :func:`lean_transports`); a URL with credentials in it still goes through aiohttp."""

    client: ClassVar[Http1Client]

    def open(
        self, call: Attempt, method: str, url: str, body: Any, headers: Mapping[str, str]
    ) -> AbstractAsyncContextManager[UpstreamResponse]:
        if "@" in url.partition("://")[2].partition("/")[0]:
            return super().open(call, method, url, body, headers)
        remaining = remaining_time(call, self.agent)
        return self.client.request(
            method,
            url,
            headers,
            None if body is None else json.dumps(body).encode(),
            content_type="application/json" if body is not None else None,
            ssl=self.ssl,
            server_hostname=self.server_hostname,
            timeout=remaining,
            connect_timeout=min(remaining or 10.0, 10.0),
            default_headers=_LEAN_DEFAULT_HEADERS,
        )


def lean_transports(client: Http1Client) -> type[HttpTransport]:
    """The transport class for ``AdapterResources.transports`` whose requests ``client`` sends."""
    return type("LeanHttpTransport", (LeanHttpTransport,), {"client": client})


@dataclass(frozen=True, slots=True)
class AdapterResources:
    """Process-wide resources an adapter may use (owned by the gateway)."""

    http: aiohttp.ClientSession
    # The class HTTP adapters send through; a test passes a MockUpstream's ``transport`` to answer
    # from a function.
    transports: type[HttpTransport] = HttpTransport
