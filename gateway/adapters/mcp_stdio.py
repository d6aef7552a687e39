"""A client of one MCP server the gateway launches itself and talks to over stdio
(newline-delimited JSON-RPC on the child's stdin/stdout, 2025-11-25 handshake).

The child is supervised: when it exits, calls in flight fail (transient: the
chain may retry what is safe to retry), and it is started again after a
backoff that doubles up to 30 s, at most ``max_restarts`` times in a row (a
start that completes its handshake resets the count). A call the gateway
abandons (a per-try timeout, a caller gone) is cancelled upstream with
``notifications/cancelled``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from gateway.adapters.mcp_client import CLIENT_INFO, with_meta
from gateway.model import Attempt, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from gateway.protocols import mcp

log = logging.getLogger("agent_gateway.mcp.stdio")
_MAX_LINE = 32 * 1024 * 1024
_MAX_BACKOFF = 30.0


class McpStdioUpstream:
    """Requests to one stdio MCP server, launched on first use and restarted when it dies."""

    def __init__(
        self,
        name: str,
        command: str,
        args: Sequence[str],
        env: Mapping[str, str],
        max_restarts: int = 5,
        restart_backoff: float = 0.5,
    ) -> None:
        self.name = name
        self.command = command
        self.args = list(args)
        self.env = dict(env)
        self.max_restarts = max_restarts
        self.restart_backoff = restart_backoff
        self.version: str | None = None
        self.server_capabilities: dict[str, Any] = {}
        self.starts = 0
        self._failures = 0
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._lock = asyncio.Lock()
        self._ids = itertools.count(1)
        self._closed = False
        # Progress notifications by token, for the stream of the request that named it.
        self._progress: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        # Called with each list-changed and resource-updated notification (the federation follows them).
        self.on_notification: Callable[[dict[str, Any]], None] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.returncode is None else None

    async def _start(self) -> None:
        if self._failures > 0:
            if self._failures > self.max_restarts:
                raise UpstreamUnavailable(
                    f"the stdio MCP server {self.name!r} crashed {self._failures} times in a row; not restarted",
                    agent=self.name,
                    reached=False,
                )
            await asyncio.sleep(min(_MAX_BACKOFF, self.restart_backoff * 2 ** (self._failures - 1)))
        # `python` means the gateway's own interpreter (the environment it runs in, with its packages).
        command = sys.executable if self.command == "python" else self.command
        try:
            self._process = await asyncio.create_subprocess_exec(
                command,
                *self.args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                env={**os.environ, **self.env},
                limit=_MAX_LINE,
            )
        except OSError as exc:
            self._failures += 1
            raise UpstreamUnavailable(
                f"cannot start {self.command!r}: {exc.strerror}", agent=self.name, reached=False
            ) from exc
        self.starts += 1
        self._reader = asyncio.create_task(self._read(self._process), name=f"agw-mcp-stdio-{self.name}")
        message = {
            "jsonrpc": "2.0",
            "id": f"agw-{next(self._ids)}",
            "method": "initialize",
            "params": {"protocolVersion": mcp.LEGACY, "capabilities": {}, "clientInfo": CLIENT_INFO},
        }
        try:
            answer = await asyncio.wait_for(self._send_request(message), 30)
        except (UpstreamError, TimeoutError) as exc:
            self._failures += 1
            await self._kill()
            raise UpstreamUnavailable(
                f"the stdio MCP server {self.name!r} did not initialize", agent=self.name
            ) from exc
        result = answer.get("result")
        if not isinstance(result, dict):
            self._failures += 1
            await self._kill()
            raise UpstreamError(f"the stdio MCP server refused initialize: {answer.get('error')}", agent=self.name)
        version = result.get("protocolVersion")
        self.version = version if isinstance(version, str) else mcp.LEGACY
        self.server_capabilities = dict(result.get("capabilities") or {})
        await self._write(mcp.notification("notifications/initialized"))
        self._failures = 0

    async def ensure_ready(self, call: Attempt | None = None) -> str:
        async with self._lock:
            if self._closed:
                raise UpstreamUnavailable("the gateway is stopping", agent=self.name, reached=False)
            if self._process is None or self._process.returncode is not None:
                await self._start()
            assert self.version is not None
            return self.version

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        try:
            while line := await process.stdout.readline():
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a stray print on stdout is not a message
                if not isinstance(item, dict):
                    continue
                if "method" not in item:
                    future = self._pending.pop(str(item.get("id")), None)
                    if future is not None and not future.done():
                        future.set_result(item)
                elif "id" not in item:
                    self._notified(item)
        except (ValueError, ConnectionError):
            pass
        finally:
            await process.wait()
            if not self._closed:
                log.warning("stdio MCP server %s exited with %s", self.name, process.returncode)
                self._failures += 1
            error = UpstreamUnavailable(f"the stdio MCP server {self.name!r} exited", agent=self.name)
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(error)
            self._pending.clear()

    def _notified(self, item: dict[str, Any]) -> None:
        method = str(item.get("method"))
        raw = item.get("params")
        params: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if method == "notifications/progress":
            queue = self._progress.get(str(params.get("progressToken")))
            if queue is not None and not queue.full():
                queue.put_nowait(item)
        elif mcp.is_followed_notification(method) and self.on_notification is not None:
            self.on_notification(item)

    async def _write(self, message: Mapping[str, Any]) -> None:
        process = self._process
        if process is None or process.stdin is None or process.returncode is not None:
            raise UpstreamUnavailable(
                f"the stdio MCP server {self.name!r} is not running", agent=self.name, reached=False
            )
        try:
            process.stdin.write(json.dumps(message).encode() + b"\n")
            await process.stdin.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise UpstreamUnavailable(f"the stdio MCP server {self.name!r} went away", agent=self.name) from exc

    async def _send_request(self, message: dict[str, Any]) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[message["id"]] = future
        try:
            await self._write(message)
            return await future
        except asyncio.CancelledError:
            # Abandoned (a timeout, a caller gone): tell the server to stop working on it.
            if message.get("method") != "initialize":
                with contextlib.suppress(UpstreamError):
                    await self._write(
                        mcp.notification("notifications/cancelled", {"requestId": message["id"], "reason": "abandoned"})
                    )
            raise
        finally:
            self._pending.pop(message["id"], None)

    async def request(self, call: Attempt, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        await self.ensure_ready(call)
        trace = {k: v for k, v in call.headers.items() if k in mcp.TRACE_KEYS}
        message = {
            "jsonrpc": "2.0",
            "id": f"agw-{next(self._ids)}",
            "method": method,
            "params": with_meta(params, trace),
        }
        timeout = call.timeout()
        if timeout is not None and timeout <= 0:
            raise UpstreamTimeout("the deadline passed before the tool was called", agent=self.name)
        try:
            return await asyncio.wait_for(self._send_request(message), timeout)
        except TimeoutError:
            raise UpstreamTimeout("the stdio MCP server did not answer in time", agent=self.name) from None

    async def respond(self, call: Attempt, answer: Mapping[str, Any]) -> None:
        """Answer a request the server made (it declares no capability to be asked, so none is expected)."""
        await self._write(answer)

    async def stream(self, call: Attempt, method: str, params: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The request's progress notifications as they come, then its response."""
        meta = params.get("_meta")
        token = meta.get("progressToken") if isinstance(meta, Mapping) else None
        if token is None:
            yield await self.request(call, method, params)
            return
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1024)
        self._progress[str(token)] = queue
        answer = asyncio.ensure_future(self.request(call, method, params))
        try:
            while True:
                note = asyncio.ensure_future(queue.get())
                await asyncio.wait({answer, note}, return_when=asyncio.FIRST_COMPLETED)
                if note.done():
                    yield note.result()
                    continue
                note.cancel()
                while not queue.empty():
                    yield queue.get_nowait()
                yield answer.result()
                return
        finally:
            answer.cancel()  # a reader gone early abandons the request (notifications/cancelled goes out)
            self._progress.pop(str(token), None)

    async def _kill(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def aclose(self) -> None:
        self._closed = True
        process = self._process
        if process is not None and process.returncode is None and process.stdin is not None:
            process.stdin.close()  # the stdio transport's shutdown: close stdin, then wait, then kill
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 2)
        await self._kill()
