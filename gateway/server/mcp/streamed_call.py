"""A tools/call answered as an SSE stream: the upstream's progress and log notifications passed on as
they come, its requests put to the client, and on a 2025-11-25 session a call that outlives its connection."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from opentelemetry.trace import Tracer

from gateway.config.schema import McpStreams
from gateway.federation.attributes import ATTR_MCP_METHOD, ATTR_TOOL
from gateway.model import Context, GatewayError
from gateway.protocols import mcp
from gateway.protocols.sse import format_sse
from gateway.server.inbound import server_span
from gateway.server.mcp.client_input import INPUT_CAPABILITIES, Emit, answer_for_upstream, ask_client, needs_input
from gateway.server.mcp.negotiation import Incoming
from gateway.server.mcp.sessions import McpSession
from gateway.server.mcp.stream_serving import serve_stream
from gateway.server.mcp.wire import final_answer, json_answer, request_context
from gateway.server.request_keys import GUARD_KEY, IDENTITY_KEY
from gateway.server.sse_writer import SSE_HEADERS, SseWriter
from gateway.telemetry import tracing as t

log = logging.getLogger("agent_gateway.mcp")

_MAX_INPUT_ROUNDS = 8
# A streamed call, run with what sends its messages on.
_Run = Callable[[Emit], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class _CallRelay:
    """What one streamed call passes on: the tool, the progress tokens (ours upstream, the client's) and
    the client's log level."""

    name: str
    ours: str
    client_token: Any
    level: str | None


def log_level(message: mcp.JsonRpcMessage, session: McpSession | None) -> str | None:
    """The client's log level for this request: 2026-07-28's ``_meta``, or its 2025-11-25 session's."""
    level = message.meta.get(mcp.META_LOG_LEVEL)
    if isinstance(level, str) and level in mcp.LOG_LEVELS:
        return level
    return session.log_level if session is not None else None


def wants_stream(message: mcp.JsonRpcMessage, session: McpSession | None) -> bool:
    """A tools/call asking for progress or logs, or from a 2025-11-25 client a tool may ask for input."""
    return message.method == "tools/call" and (
        "progressToken" in message.meta
        or log_level(message, session) is not None
        or (session is not None and any(k in session.capabilities for k in INPUT_CAPABILITIES))
    )


class StreamedCalls:
    """The streamed tools/calls of the front, and those still running for 2025-11-25 streams."""

    def __init__(self, tracer: Tracer, keepalive: float | None) -> None:
        self.tracer = tracer
        self.keepalive = keepalive
        # Tool calls running for a 2025-11-25 stream, whether or not a client follows it now.
        self._calls: set[asyncio.Task[None]] = set()

    async def aclose(self) -> None:
        """The listener stops: the calls still running for 2025-11-25 streams end (upstream too)."""
        calls = list(self._calls)
        for task in calls:
            task.cancel()
        await asyncio.gather(*calls, return_exceptions=True)

    async def answer(self, incoming: Incoming, settings: McpStreams) -> web.StreamResponse:
        """A tools/call of :func:`wants_stream`: an SSE answer with the upstream's progress and log
        notifications passed on as they come (unbuffered, keep-alives while quiet). The upstream gets a
        token of ours, so tokens of different clients never meet on a shared upstream session, and the
        client's log level (logs below it are dropped here too: a shared 2025-11-25 upstream session has
        one level for every client). A 2026-07-28 upstream's ``input_required`` result is driven for a
        2025-11-25 client, which knows no such result: each input request goes to the client on this
        stream as its own request (sampling/createMessage, elicitation/create, roots/list), and the call
        is retried upstream with the client's answers.

        A 2026-07-28 client's stream is its connection: closing it drops the upstream call. A session's
        stream is resumable: the call runs on its own, its events kept for a ``Last-Event-ID`` replay,
        and only ``notifications/cancelled``, the session's end or no client for the resume window
        cancel it upstream (a disconnection is not a cancellation)."""
        request, server, message, session = incoming.request, incoming.server, incoming.message, incoming.session
        name = message.params.get("name")
        if not isinstance(name, str) or not request.app[GUARD_KEY].may_use_mcp(
            request[IDENTITY_KEY], server.name, name
        ):
            error = mcp.McpError(mcp.INVALID_PARAMS, f"unknown tool: {name!r}")
            return json_answer(mcp.error_message(message.id, error))
        client_token = message.meta.get("progressToken")
        ours = f"agw-{secrets.token_hex(8)}"
        level = log_level(message, session)
        params = {k: v for k, v in message.params.items() if k != "_meta"}
        params["_meta"] = {}
        if client_token is not None:
            params["_meta"]["progressToken"] = ours
        if level is not None:
            params["_meta"][mcp.META_LOG_LEVEL] = level
        if session is not None:
            params["_meta"][mcp.META_CLIENT_CAPABILITIES] = session.capabilities
        headers, context = request_context(request, message)
        relay = _CallRelay(name, ours, client_token, level)

        async def run(emit: Emit) -> None:
            await self._run(incoming, params, relay, headers, context, emit)

        if session is None:
            return await self._on_connection(request, run)
        return await self._on_session(request, session, message, name, run, settings)

    async def _on_connection(self, request: web.Request, run: _Run) -> web.StreamResponse:
        """A 2026-07-28 client's call: it runs while its connection lasts."""
        response = web.StreamResponse(headers=SSE_HEADERS)
        await response.prepare(request)
        async with SseWriter(response, self.keepalive) as writer:

            async def send(item: dict[str, Any]) -> None:
                await writer.send(format_sse(json.dumps(item), "message"))

            await run(send)
        await response.write_eof()
        return response

    async def _on_session(
        self,
        request: web.Request,
        session: McpSession,
        message: mcp.JsonRpcMessage,
        name: str,
        run: _Run,
        settings: McpStreams,
    ) -> web.StreamResponse:
        """A 2025-11-25 session's call: it runs on its own, onto a resumable stream this connection follows."""
        stream = session.events.open()
        if session.primes:
            stream.append("")

        async def keep(item: dict[str, Any]) -> None:
            await stream.room()
            stream.append(json.dumps(item))

        task = asyncio.create_task(run(keep), name=f"agw-mcp-call-{name}")
        self._calls.add(task)
        assert message.id is not None
        request_id = message.id
        session.inflight[request_id] = task  # notifications/cancelled stops it

        def finished(done: asyncio.Task[None]) -> None:
            self._calls.discard(done)
            if session.inflight.get(request_id) is done:
                del session.inflight[request_id]
            stream.close()
            if not done.cancelled() and done.exception() is not None:
                log.error("MCP tool call %s failed", name, exc_info=done.exception())

        task.add_done_callback(finished)
        stream.on_abandoned = task.cancel
        return await serve_stream(request, session, stream, -1, settings, self.keepalive)

    async def _run(
        self,
        incoming: Incoming,
        params: dict[str, Any],
        relay: _CallRelay,
        headers: Mapping[str, str],
        context: Context,
        emit: Emit,
    ) -> None:
        """One streamed tools/call upstream, its notifications and its answer (or error) emitted in order."""
        server, message, session = incoming.server, incoming.message, incoming.session
        attributes = {ATTR_MCP_METHOD: "tools/call", ATTR_TOOL: relay.name, t.ATTR_OPERATION: "execute_tool"}

        async def respond(answer: dict[str, Any]) -> None:
            await server.respond("tools/call", params, answer, context)

        with server_span(self.tracer, f"tools/call {relay.name}", headers, context, attributes):
            items = server.call_stream("tools/call", params, context)
            try:
                for _ in range(_MAX_INPUT_ROUNDS):
                    final = await _relay(emit, items, relay, session, respond)
                    if session is None or not needs_input(final):
                        await emit(final_answer(message, final, incoming.modern))
                        break
                    params = {**params, **await ask_client(emit, session, final["result"])}
                    await items.aclose()
                    items = server.call_stream("tools/call", params, context)
                else:
                    raise mcp.McpError(mcp.INTERNAL_ERROR, "the tool kept asking for input; gave up")
            except mcp.McpError as exc:
                await emit(mcp.error_message(message.id, exc))
            except GatewayError as exc:
                error = mcp.McpError(mcp.INTERNAL_ERROR, exc.message, {"code": exc.code.value})
                await emit(mcp.error_message(message.id, error))
            finally:
                await items.aclose()


async def _relay(
    emit: Emit,
    items: AsyncIterator[dict[str, Any]],
    relay: _CallRelay,
    session: McpSession | None,
    respond: Callable[[dict[str, Any]], Awaitable[None]],
) -> dict[str, Any]:
    """Pass one upstream call's notifications on to the client, and its requests (answered with
    ``respond``); return its final answer."""
    async for item in items:
        if "method" in item and "id" in item:
            await respond(await answer_for_upstream(emit, session, item))
            continue
        if "method" in item:
            item_params = dict(item.get("params") or {})
            if item.get("method") == "notifications/progress":
                if item_params.get("progressToken") != relay.ours or relay.client_token is None:
                    continue
                item_params["progressToken"] = relay.client_token
            elif item.get("method") == "notifications/message" and not _severe_enough(
                item_params.get("level"), relay.level
            ):
                continue
            await emit({**item, "params": item_params})
            continue
        return item
    raise mcp.McpError(mcp.INTERNAL_ERROR, "the upstream ended the call without an answer")


def _severe_enough(level: Any, threshold: str | None) -> bool:
    if threshold is None:
        return False
    rank = mcp.LOG_LEVELS.index(level) if level in mcp.LOG_LEVELS else len(mcp.LOG_LEVELS)
    return rank >= mcp.LOG_LEVELS.index(threshold)
