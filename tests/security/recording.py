"""A recording upstream for attack tests: a raw HTTP/1.1 server on 127.0.0.1:0 that keeps
every request exactly as it arrived on the wire (request line, headers, body) and answers
a fixed JSON reply. It parses nothing it does not have to, so no framework between the
gateway and the assertion can normalise a path or merge a header."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDict


@dataclass
class Recorded:
    """One request as the upstream received it."""

    request_line: str
    headers: CIMultiDict[str]
    body: bytes

    @property
    def method(self) -> str:
        return self.request_line.split(" ")[0]

    @property
    def target(self) -> str:
        """The request target exactly as sent: path and query, undecoded."""
        return self.request_line.split(" ")[1]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class RecordingUpstream:
    """Serves until closed; ``requests`` grows with every request received."""

    reply: dict[str, Any] = field(default_factory=lambda: {"messages": [{"role": "ROLE_AGENT", "parts": [{"text": "ok"}]}]})
    requests: list[Recorded] = field(default_factory=list)
    # (content type, body) for a request, instead of ``reply``.
    respond: Callable[[Recorded], tuple[bytes, bytes]] | None = None
    url: str = ""
    _server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            lines = head.decode("latin-1").split("\r\n")
            headers: CIMultiDict[str] = CIMultiDict()
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers.add(name.strip(), value.strip())
            body = b""
            if "chunked" in headers.get("transfer-encoding", "").lower():
                while True:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    chunk = await reader.readexactly(size + 2)
                    if size == 0:
                        break
                    body += chunk[:-2]
            elif length := int(headers.get("content-length", "0")):
                body = await asyncio.wait_for(reader.readexactly(length), 10)
            self.requests.append(Recorded(lines[0], headers, body))
            recorded = self.requests[-1]
            if self.respond is not None:
                content_type, payload = self.respond(recorded)
            elif "text/event-stream" in headers.get("accept", ""):  # a stream: one delta event
                content_type = b"text/event-stream"
                payload = b'data: {"type": "delta", "message": {"parts": [{"text": "ok"}]}}\n\n'
            else:
                content_type, payload = b"application/json", json.dumps(self.reply).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\nconnection: close\r\n"
                b"content-length: %d\r\n\r\n%s" % (content_type, len(payload), payload)
            )
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


@contextlib.asynccontextmanager
async def recording_upstream(**kwargs: Any) -> AsyncIterator[RecordingUpstream]:
    upstream = RecordingUpstream(**kwargs)
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.close()
