"""The requests the native HTTP/1.1 front does not serve itself go to aiohttp's request
handler, one connection's worth behind each client connection.

The native front (:mod:`gateway.http1.server`) frames every request; this bridge hands each of
the others to an aiohttp ``RequestHandler`` as the bytes llhttp parsed (the head as read, the
body re-framed the way it came), through a transport that writes straight to the client's. It
reads aiohttp's answer with httptools' response parser only to know where it ends, so that the
next request on the connection can be served (natively, if its route is native).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
from aiohttp import web

from gateway.http1.server import RequestHead, ServerConnection


class _BridgeTransport(asyncio.Transport):
    """aiohttp's view of the client connection: writes go to the client, closing ends the bridge."""

    def __init__(self, bridge: AiohttpBridge) -> None:
        super().__init__()
        self._bridge = bridge
        self._closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._closed:
            self._bridge.written(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def is_closing(self) -> bool:
        return self._closed or self._bridge.connection.closed

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._bridge.closed_by_aiohttp()

    def abort(self) -> None:
        self._closed = True
        self._bridge.connection.abandon()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        value = self._bridge.connection.extra(name)
        return default if value is None else value

    def pause_reading(self) -> None:
        self._bridge.connection.pause_reading()

    def resume_reading(self) -> None:
        self._bridge.connection.resume_reading()

    def is_reading(self) -> bool:
        return not self._bridge.connection.closed

    def get_write_buffer_size(self) -> int:
        transport = self._bridge.connection.transport
        return transport.get_write_buffer_size() if transport is not None else 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        transport = self._bridge.connection.transport
        if transport is not None:
            transport.set_write_buffer_limits(high, low)

    def can_write_eof(self) -> bool:
        return False


class AiohttpBridge:
    """One client connection's aiohttp handler, fed the requests no native route claims."""

    def __init__(self, connection: ServerConnection, handler: web.RequestHandler) -> None:
        self.connection = connection
        self.handler = handler
        self.transport = _BridgeTransport(self)
        self._parser: httptools.HttpResponseParser | None = None
        self._head_only = False
        self._chunked = False
        self._active = False
        self._raw = False
        handler.connection_made(self.transport)

    # -- requests in (the Fallback side) --------------------------------------------------------

    def begin(self, head: RequestHead) -> None:
        self._active = True
        self._head_only = head.method == "HEAD"
        self._chunked = head.chunked
        self._parser = httptools.HttpResponseParser(self)
        self.handler.data_received(head.framed())

    def body(self, data: bytes) -> None:
        if self._chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        self.handler.data_received(data)

    def end(self) -> None:
        if self._chunked:
            self.handler.data_received(b"0\r\n\r\n")

    def raw(self, data: bytes) -> None:
        # An upgraded connection: the bytes are aiohttp's, and so is the end of every answer.
        self._raw = True
        self._parser = None
        self.handler.data_received(data)

    def pause_writing(self) -> None:
        self.handler.pause_writing()

    def resume_writing(self) -> None:
        self.handler.resume_writing()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.handler.connection_lost(exc)

    # -- answers out ----------------------------------------------------------------------------

    def written(self, data: bytes) -> None:
        self.connection.write(data)
        if self._parser is not None:
            try:
                self._parser.feed_data(data)
            except httptools.HttpParserError:
                # Not a response we can follow to its end: neither can the caller; end the connection.
                self._parser = None
                self.connection.abandon()

    def on_headers_complete(self) -> None:
        if self._head_only and self._parser is not None and self._parser.get_status_code() >= 200:
            self._finished(not self._parser.should_keep_alive())

    def on_message_complete(self) -> None:
        parser = self._parser
        if parser is None or parser.get_status_code() < 200:
            return  # 100 Continue: the answer is still to come
        self._finished(not parser.should_keep_alive())

    def _finished(self, close: bool) -> None:
        self._parser = None
        self._active = False
        self.connection.fallback_done(close)

    def closed_by_aiohttp(self) -> None:
        if self._active or self._raw:
            # Mid-answer (or an upgraded connection): the client's connection ends with it.
            self._active = False
            self.connection.end_connection()
        else:
            # Idle (its keep-alive timer, or the answer it had to finish first): the connection goes on natively.
            self.connection.detach_fallback()
            self.handler.connection_lost(None)


def aiohttp_fallback(server: web.Server, **handler_args: Any) -> Any:
    """The fallback factory of a listener's native connections: one aiohttp handler per connection."""

    def make(connection: ServerConnection) -> AiohttpBridge:
        return AiohttpBridge(connection, web.RequestHandler(server, loop=connection.loop, **handler_args))

    return make
