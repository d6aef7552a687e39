"""The Python client an agent uses to call other agents through its sidecar.

    async with AgentClient.from_env(inbound=request.headers) as client:
        result = await client.invoke("researcher", "find papers on otters")

``inbound`` is the header mapping of the request the agent is serving: the
client carries its trace, session, thread, user and request ids and the
remaining deadline forward, so the nested call joins the caller's trace. With
no ``inbound``, the current OpenTelemetry context is used.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate

from agentgateway.v1 import gateway_pb2 as pb
from agentgateway.v1 import gateway_pb2_grpc as pb_grpc
from agentgateway.v1 import runs_pb2 as rpb
from agentgateway.v1 import runs_pb2_grpc as rpb_grpc
from agentgateway.v1 import state_pb2 as spb
from agentgateway.v1 import state_pb2_grpc as spb_grpc
from gateway import wire
from gateway.context import context_from_headers, inject_headers
from gateway.model import JSON, Context, Event, GatewayError, Invocation, Message, Options, Result, StatusCode
from gateway.state.store import Scope, StateRecord, StateValue

DEFAULT_TARGET_ENV = "AGENT_GATEWAY_GRPC"
DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_HTTP_TARGET_ENV = "AGENT_GATEWAY_HTTP"
DEFAULT_HTTP_TARGET = "127.0.0.1:8080"


class ClientError(GatewayError):
    """A failed call, with the gateway's status code and structured detail."""

    def __init__(
        self,
        code: StatusCode,
        message: str,
        *,
        agent: str = "",
        transient: bool = False,
        request_id: str = "",
        details: Mapping[str, JSON] | None = None,
    ) -> None:
        super().__init__(message, agent=agent, transient=transient, details=details)
        self.code = code
        self.request_id = request_id


def _client_error(error: grpc.aio.AioRpcError) -> ClientError:
    for key, value in error.trailing_metadata() or ():
        if key == wire.ERROR_TRAILER and isinstance(value, bytes):
            detail = pb.ErrorDetail.FromString(value)
            details = wire.error_details(detail) or None
            return ClientError(
                StatusCode(detail.code),
                detail.message,
                agent=detail.agent,
                transient=detail.transient,
                request_id=detail.request_id,
                details=details,
            )
    code = error.code()
    name = code.name if code is not None else "UNKNOWN"
    return ClientError(
        StatusCode(name) if name in StatusCode.__members__ else StatusCode.UNKNOWN,
        error.details() or name,
        transient=name == "UNAVAILABLE",
    )


@dataclass(frozen=True, slots=True)
class AgentDescription:
    name: str
    kind: str
    endpoint: str
    description: str
    streaming: bool


def _messages(value: str | Message | Sequence[Message]) -> tuple[Message, ...]:
    if isinstance(value, str):
        return (Message.user(value),)
    if isinstance(value, Message):
        return (value,)
    return tuple(value)


class AgentClient:
    """Async gRPC client for the gateway's AgentGatewayService."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        inbound: Mapping[str, str] | None = None,
        channel: grpc.aio.Channel | None = None,
        http_target: str = DEFAULT_HTTP_TARGET,
    ) -> None:
        self._owns_channel = channel is None
        self.channel = channel or grpc.aio.insecure_channel(target)
        self.stub = pb_grpc.AgentGatewayServiceStub(self.channel)  # type: ignore[no-untyped-call]  # generated, untyped
        self._inbound = {k.lower(): v for k, v in (inbound or {}).items()}
        self._inbound_context = context_from_headers(self._inbound) if inbound is not None else None
        self.state = StateClient(self.channel, self._context_metadata)
        self.runs = RunsClient(self)
        # MCP tools of the sidecar's virtual servers (its HTTP listener), with this client's context.
        self.tools = ToolsClient(http_target, self._context_metadata)

    @classmethod
    def from_env(cls, *, inbound: Mapping[str, str] | None = None) -> AgentClient:
        """A client for the local sidecar at ``$AGENT_GATEWAY_GRPC`` (default 127.0.0.1:50051);
        tools at ``$AGENT_GATEWAY_HTTP`` (default 127.0.0.1:8080)."""
        return cls(
            os.environ.get(DEFAULT_TARGET_ENV, DEFAULT_TARGET),
            inbound=inbound,
            http_target=os.environ.get(DEFAULT_HTTP_TARGET_ENV, DEFAULT_HTTP_TARGET),
        )

    def _prepare(
        self,
        agent: str,
        input: str | Message | Sequence[Message],
        session_id: str | None,
        thread_id: str | None,
        user_id: str | None,
        params: Mapping[str, JSON] | None,
        timeout: float | None,
        idempotent: bool,
    ) -> tuple[pb.InvokeRequest, tuple[tuple[str, str], ...], float | None]:
        base = self._inbound_context or Context()
        context = Context(
            session_id=session_id if session_id is not None else base.session_id,
            thread_id=thread_id if thread_id is not None else base.thread_id,
            user_id=user_id if user_id is not None else base.user_id,
            request_id=base.request_id,
            baggage=base.baggage,
            deadline=base.deadline,
        ).with_timeout(timeout)
        invocation = Invocation(agent, _messages(input), context, Options(params=params or {}, idempotent=idempotent))
        request = wire.invocation_to_pb(invocation)
        carrier: dict[str, str] = {}
        trace = propagate.extract(self._inbound) if self._inbound else otel_context.get_current()
        inject_headers(context, carrier, trace)
        return request, tuple(carrier.items()), context.remaining()

    async def invoke(
        self,
        agent: str,
        input: str | Message | Sequence[Message],
        *,
        session_id: str | None = None,
        thread_id: str | None = None,
        user_id: str | None = None,
        params: Mapping[str, JSON] | None = None,
        timeout: float | None = None,
        idempotent: bool = True,
    ) -> Result:
        """Call ``agent`` and wait for its result; raises :class:`ClientError` on failure."""
        request, metadata, remaining = self._prepare(
            agent, input, session_id, thread_id, user_id, params, timeout, idempotent
        )
        try:
            response = await self.stub.Invoke(request, metadata=metadata, timeout=remaining)
        except grpc.aio.AioRpcError as exc:
            raise _client_error(exc) from None
        return wire.result_from_pb(response)

    async def stream(
        self,
        agent: str,
        input: str | Message | Sequence[Message],
        *,
        session_id: str | None = None,
        thread_id: str | None = None,
        user_id: str | None = None,
        params: Mapping[str, JSON] | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[Event]:
        """Call ``agent`` and yield its events as they arrive."""
        request, metadata, remaining = self._prepare(
            agent, input, session_id, thread_id, user_id, params, timeout, True
        )
        call = self.stub.InvokeStream(wire.stream_request(request), metadata=metadata, timeout=remaining)
        try:
            async for item in call:
                if item.HasField("event"):
                    yield wire.event_from_pb(item.event)
        except grpc.aio.AioRpcError as exc:
            raise _client_error(exc) from None
        finally:
            call.cancel()

    async def list_agents(self) -> list[AgentDescription]:
        try:
            response = await self.stub.ListAgents(pb.ListAgentsRequest())
        except grpc.aio.AioRpcError as exc:
            raise _client_error(exc) from None
        return [AgentDescription(a.name, a.kind, a.endpoint, a.description, a.streaming) for a in response.agents]

    def _context_metadata(self) -> tuple[tuple[str, str], ...]:
        # The scope ids travel exactly as on a nested invoke: from the inbound request.
        carrier: dict[str, str] = {}
        trace = propagate.extract(self._inbound) if self._inbound else otel_context.get_current()
        inject_headers(self._inbound_context or Context(), carrier, trace)
        return tuple(carrier.items())

    async def aclose(self) -> None:
        await self.tools.aclose()
        if self._owns_channel:
            await self.channel.close()

    async def __aenter__(self) -> AgentClient:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool's answer: its content blocks, structured content when given, and whether it failed."""

    content: list[dict[str, Any]]
    structured: Any
    is_error: bool

    @property
    def text(self) -> str:
        return "".join(str(c.get("text", "")) for c in self.content if c.get("type") == "text")


class ToolsClient:
    """MCP tools through the sidecar (2026-07-28, stateless): ``await client.tools.call("tools", "math_add", {...})``.

    Each request carries the client's context (trace, baggage, session, user, deadline) in its
    headers and the trace context in ``_meta`` too, so the tool call joins the agent's trace."""

    def __init__(self, target: str, context: Callable[[], tuple[tuple[str, str], ...]]) -> None:
        self.base = target if "://" in target else f"http://{target}"
        self._context = context
        self._session: Any = None
        self._ids = 0

    async def _rpc(self, server: str, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        import aiohttp  # the gRPC-only user of this client never loads it

        from gateway.protocols import mcp

        if self._session is None:
            self._session = aiohttp.ClientSession()
        carrier = dict(self._context())
        meta = {mcp.META_VERSION: mcp.MODERN, mcp.META_CLIENT_CAPABILITIES: {}}
        meta.update({k: v for k, v in carrier.items() if k in mcp.TRACE_KEYS})
        self._ids += 1
        body = {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": {**params, "_meta": meta}}
        headers = {**carrier, "accept": "application/json, text/event-stream", "content-type": "application/json"}
        headers.update(mcp.request_headers(body, mcp.MODERN))
        async with self._session.post(f"{self.base}/mcp/{server}", json=body, headers=headers) as response:
            try:
                answer: dict[str, Any] = await response.json(content_type=None)
            except ValueError:
                answer = {}
            if not isinstance(answer, dict) or not ("result" in answer or "error" in answer):
                text = f"HTTP {response.status} from the MCP front"
                raise ClientError(
                    StatusCode.UNAVAILABLE if response.status >= 500 else StatusCode.INVALID_ARGUMENT, text
                )
        if "error" in answer:
            error = answer["error"]
            data = error.get("data") if isinstance(error.get("data"), dict) else {}
            code = (
                StatusCode(data["code"])
                if data.get("code") in StatusCode._value2member_map_
                else StatusCode.INVALID_ARGUMENT
            )
            raise ClientError(code, str(error.get("message", "")), details={"mcp_code": error.get("code")})
        result: dict[str, Any] = answer["result"]
        return result

    async def list(self, server: str) -> list[dict[str, Any]]:
        """The tools of virtual server ``server`` this caller may use."""
        tools: list[dict[str, Any]] = (await self._rpc(server, "tools/list", {})).get("tools", [])
        return tools

    async def call(self, server: str, name: str, arguments: Mapping[str, Any] | None = None) -> ToolResult:
        """Call tool ``name``; a tool's own failure is ``is_error``, a gateway failure raises ClientError."""
        result = await self._rpc(server, "tools/call", {"name": name, "arguments": dict(arguments or {})})
        return ToolResult(
            list(result.get("content") or []), result.get("structuredContent"), bool(result.get("isError"))
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


ScopeName = Scope | str

_SCOPE_TO_PB = {
    Scope.SESSION: spb.STATE_SCOPE_SESSION,
    Scope.THREAD: spb.STATE_SCOPE_THREAD,
    Scope.USER: spb.STATE_SCOPE_USER,
    Scope.WORKFLOW: spb.STATE_SCOPE_WORKFLOW,
}


def _record(entry: spb.StateEntry) -> StateRecord:
    if entry.WhichOneof("value") == "bytes":
        value = StateValue.of_bytes(entry.bytes)
    else:
        value = StateValue(entry.json.encode(), True)
    expires = entry.expire_time.ToNanoseconds() / 1e9 if entry.HasField("expire_time") else None
    return StateRecord(entry.key, value, entry.etag, entry.version, entry.update_time.ToNanoseconds() / 1e9, expires)


class StateClient:
    """The shared state service, as ``AgentClient.state``.

    Scopes are ``"session"``, ``"thread"``, ``"user"`` and ``"workflow"``; the
    scope id is the one the inbound request carries unless ``scope_id`` names
    one. Values are JSON (``record.value.json()``) or ``bytes``.

        record = await client.state.get("session", "plan")
        await client.state.compare_and_set("session", "plan", record.etag, {"step": 2})
    """

    def __init__(self, channel: grpc.aio.Channel, metadata: Callable[[], tuple[tuple[str, str], ...]]) -> None:
        self.stub = spb_grpc.StateServiceStub(channel)  # type: ignore[no-untyped-call]  # generated, untyped
        self._metadata = metadata

    async def _call(self, method: Any, request: Any) -> Any:
        try:
            return await method(request, metadata=self._metadata())
        except grpc.aio.AioRpcError as exc:
            raise _client_error(exc) from None

    async def get(self, scope: ScopeName, key: str, *, scope_id: str = "") -> StateRecord | None:
        """The record, or None when the key is absent or expired."""
        request = spb.GetStateRequest(scope=_SCOPE_TO_PB[Scope(scope)], scope_id=scope_id, key=key)
        try:
            return _record((await self._call(self.stub.GetState, request)).entry)
        except ClientError as exc:
            if exc.code is StatusCode.NOT_FOUND:
                return None
            raise

    async def put(
        self,
        scope: ScopeName,
        key: str,
        value: JSON | bytes,
        *,
        if_match: str | None = None,
        create_only: bool = False,
        ttl: float | None = None,
        scope_id: str = "",
    ) -> StateRecord:
        """Write ``value`` (bytes stay bytes, anything else is JSON); raises ClientError
        with ``StatusCode.ABORTED`` when ``if_match`` or ``create_only`` does not hold."""
        request = spb.PutStateRequest(
            scope=_SCOPE_TO_PB[Scope(scope)],
            scope_id=scope_id,
            key=key,
            if_match=if_match or "",
            if_none_match=create_only,
        )
        if isinstance(value, bytes | bytearray):
            request.bytes = bytes(value)
        else:
            request.json = StateValue.of_json(value).payload.decode()
        if ttl is not None:
            request.ttl.FromNanoseconds(round(ttl * 1e9))
        return _record((await self._call(self.stub.PutState, request)).entry)

    async def compare_and_set(
        self, scope: ScopeName, key: str, expected_etag: str | None, value: JSON | bytes, *, scope_id: str = ""
    ) -> StateRecord:
        """Write only if the key still has ``expected_etag`` (None: only if it is absent)."""
        if expected_etag is None:
            return await self.put(scope, key, value, create_only=True, scope_id=scope_id)
        return await self.put(scope, key, value, if_match=expected_etag, scope_id=scope_id)

    async def delete(self, scope: ScopeName, key: str, *, if_match: str | None = None, scope_id: str = "") -> bool:
        """True when the key was removed, False when it was absent."""
        request = spb.DeleteStateRequest(
            scope=_SCOPE_TO_PB[Scope(scope)], scope_id=scope_id, key=key, if_match=if_match or ""
        )
        try:
            await self._call(self.stub.DeleteState, request)
        except ClientError as exc:
            if exc.code is StatusCode.NOT_FOUND:
                return False
            raise
        return True

    async def list(
        self, scope: ScopeName, prefix: str = "", *, scope_id: str = "", page_size: int = 100, max_pages: int = 100
    ) -> list[StateRecord]:
        """Every live key with ``prefix`` in key order (at most ``max_pages`` pages)."""
        records: list[StateRecord] = []
        token = ""
        for _ in range(max_pages):
            request = spb.ListStateRequest(
                scope=_SCOPE_TO_PB[Scope(scope)],
                scope_id=scope_id,
                prefix=prefix,
                page_size=page_size,
                page_token=token,
            )
            response = await self._call(self.stub.ListState, request)
            records.extend(_record(entry) for entry in response.entries)
            token = response.next_page_token
            if not token:
                break
        return records


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A background run as the gateway reports it."""

    run_id: str
    agent: str
    status: str  # queued, running, succeeded, failed, cancelled
    last_sequence: int
    error: str = ""

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")


def _run_info(run: rpb.Run) -> RunInfo:
    return RunInfo(run.run_id, run.agent, run.status, run.last_sequence, run.error.message)


class RunsClient:
    """Background runs, as ``AgentClient.runs``: submit now, follow, fetch or cancel later.

    run = await client.runs.submit("research", "a long question", session_id="s-1")
    async for sequence, event in client.runs.watch(run.run_id):  # resumable: after=<last seen>
        ...
    result = await client.runs.result(run.run_id)
    """

    def __init__(self, client: AgentClient) -> None:
        self.client = client
        self.stub = rpb_grpc.RunServiceStub(client.channel)  # type: ignore[no-untyped-call]  # generated, untyped

    async def _call(self, method: Any, request: Any) -> Any:
        try:
            return await method(request, metadata=self.client._context_metadata())
        except grpc.aio.AioRpcError as exc:
            raise _client_error(exc) from None

    async def submit(
        self,
        agent: str,
        input: str | Message | Sequence[Message],
        *,
        session_id: str | None = None,
        thread_id: str | None = None,
        user_id: str | None = None,
        params: Mapping[str, JSON] | None = None,
        timeout: float | None = None,
        webhook_url: str = "",
    ) -> RunInfo:
        """Start ``agent`` in the background; ``timeout`` is the only limit the run gets."""
        request, metadata, _ = self.client._prepare(
            agent, input, session_id, thread_id, user_id, params, timeout, idempotent=False
        )
        submit = rpb.SubmitRunRequest(invocation=request, webhook_url=webhook_url)
        try:
            return _run_info((await self.stub.SubmitRun(submit, metadata=metadata)).run)
        except grpc.aio.AioRpcError as exc:
            raise _client_error(exc) from None

    async def get(self, run_id: str) -> RunInfo:
        return _run_info((await self._call(self.stub.GetRun, rpb.GetRunRequest(run_id=run_id))).run)

    async def result(self, run_id: str) -> Result:
        """The finished run's result; raises ClientError with the run's error, or while it runs."""
        answer = await self._call(self.stub.GetRunResult, rpb.GetRunResultRequest(run_id=run_id))
        return wire.result_from_pb(answer.result)

    async def cancel(self, run_id: str) -> RunInfo:
        return _run_info((await self._call(self.stub.CancelRun, rpb.CancelRunRequest(run_id=run_id))).run)

    async def watch(self, run_id: str, *, after: int = 0) -> AsyncIterator[tuple[int, Event]]:
        """(sequence, event) pairs after ``after``, live until the run ends; a failed or
        cancelled run ends with ClientError. Reconnect with the last sequence to resume."""
        call = self.stub.WatchRun(
            rpb.WatchRunRequest(run_id=run_id, after_sequence=after), metadata=self.client._context_metadata()
        )
        try:
            async for item in call:
                if item.HasField("event"):
                    yield item.event.sequence, wire.event_from_pb(item.event)
        except grpc.aio.AioRpcError as exc:
            raise _client_error(exc) from None
        finally:
            call.cancel()
