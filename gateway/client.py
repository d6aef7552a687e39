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
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate

from agentgateway.v1 import gateway_pb2 as pb
from agentgateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway import wire
from gateway.context import context_from_headers, inject_headers
from gateway.model import JSON, Context, Event, GatewayError, Invocation, Message, Options, Result, StatusCode

DEFAULT_TARGET_ENV = "AGENT_GATEWAY_GRPC"
DEFAULT_TARGET = "127.0.0.1:50051"


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
        self.status_code = code
        self.request_id = request_id


def _client_error(error: grpc.aio.AioRpcError) -> ClientError:
    for key, value in error.trailing_metadata() or ():
        if key == wire.ERROR_TRAILER and isinstance(value, bytes):
            detail = pb.ErrorDetail.FromString(value)
            details = wire.to_json(detail.details) if detail.HasField("details") else None
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
    """Async gRPC client for the gateway's AgentGateway service."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        inbound: Mapping[str, str] | None = None,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        self._owns_channel = channel is None
        self.channel = channel or grpc.aio.insecure_channel(target)
        self.stub = pb_grpc.AgentGatewayStub(self.channel)  # type: ignore[no-untyped-call]  # generated, untyped
        self._inbound = {k.lower(): v for k, v in (inbound or {}).items()}
        self._inbound_context = context_from_headers(self._inbound) if inbound is not None else None

    @classmethod
    def from_env(cls, *, inbound: Mapping[str, str] | None = None) -> AgentClient:
        """A client for the local sidecar at ``$AGENT_GATEWAY_GRPC`` (default 127.0.0.1:50051)."""
        return cls(os.environ.get(DEFAULT_TARGET_ENV, DEFAULT_TARGET), inbound=inbound)

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
        call = self.stub.InvokeStream(request, metadata=metadata, timeout=remaining)
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

    async def aclose(self) -> None:
        if self._owns_channel:
            await self.channel.close()

    async def __aenter__(self) -> AgentClient:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()
