"""``AgentClient``: call other agents through the sidecar, with state, runs and tools beside.

    async with AgentClient.from_env(inbound=request.headers) as client:
        result = await client.invoke("researcher", "find papers on otters")

``inbound`` is the header mapping of the request the agent is serving: the client carries its
trace, session, thread, user and request ids and the remaining deadline forward, so the nested
call joins the caller's trace. With no ``inbound``, the current OpenTelemetry context is used.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import grpc

from agentgateway.v1 import gateway_pb2 as pb
from agentgateway.v1 import gateway_pb2_grpc as pb_grpc
from agentgateway_client import wire
from agentgateway_client.channel import Sidecar
from agentgateway_client.model import JSON, AgentDescription, Event, Message, Result
from agentgateway_client.runs import RunsClient
from agentgateway_client.state import StateClient
from agentgateway_client.tools import ToolsClient

DEFAULT_TARGET_ENV = "AGENT_GATEWAY_GRPC"
DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_HTTP_TARGET_ENV = "AGENT_GATEWAY_HTTP"
DEFAULT_HTTP_TARGET = "127.0.0.1:8080"


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
        self.sidecar = Sidecar(target, inbound, channel)
        self.channel = self.sidecar.channel
        self.stub = pb_grpc.AgentGatewayServiceStub(self.channel)  # type: ignore[no-untyped-call]  # generated, untyped
        self.state = StateClient(self.sidecar)
        self.runs = RunsClient(self.sidecar)
        # MCP tools of the sidecar's virtual servers (its HTTP listener), with this client's context.
        self.tools = ToolsClient(http_target, self.sidecar.metadata)

    @classmethod
    def from_env(cls, *, inbound: Mapping[str, str] | None = None) -> AgentClient:
        """A client for the local sidecar at ``$AGENT_GATEWAY_GRPC`` (default 127.0.0.1:50051);
        tools at ``$AGENT_GATEWAY_HTTP`` (default 127.0.0.1:8080)."""
        return cls(
            os.environ.get(DEFAULT_TARGET_ENV, DEFAULT_TARGET),
            inbound=inbound,
            http_target=os.environ.get(DEFAULT_HTTP_TARGET_ENV, DEFAULT_HTTP_TARGET),
        )

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
        request, metadata, remaining = self.sidecar.prepare(
            agent, input, session_id, thread_id, user_id, params, timeout, idempotent
        )
        response = await self.sidecar.call(self.stub.Invoke, request, metadata=metadata, timeout=remaining)
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
        request, metadata, remaining = self.sidecar.prepare(
            agent, input, session_id, thread_id, user_id, params, timeout, True
        )
        call = self.stub.InvokeStream(wire.stream_request(request), metadata=metadata, timeout=remaining)
        try:
            async for item in call:
                if item.HasField("event"):
                    yield wire.event_from_pb(item.event)
        except grpc.aio.AioRpcError as exc:
            raise wire.client_error(exc) from None
        finally:
            call.cancel()

    async def list_agents(self) -> list[AgentDescription]:
        response = await self.sidecar.call(self.stub.ListAgents, pb.ListAgentsRequest(), metadata=None)
        return [AgentDescription(a.name, a.kind, a.endpoint, a.description, a.streaming) for a in response.agents]

    async def aclose(self) -> None:
        await self.tools.aclose()
        await self.sidecar.aclose()

    async def __aenter__(self) -> AgentClient:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()
