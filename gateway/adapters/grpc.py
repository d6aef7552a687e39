"""The gRPC upstream adapter: agents that serve the gateway's own proto.

The remaining deadline becomes the gRPC call deadline and the context headers
become (lower-case) metadata, so a gRPC agent sees exactly what an HTTP agent
sees. gRPC status codes are classified into the model's errors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from pydantic import Field

from agentgateway.v1 import gateway_pb2 as pb
from agentgateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway import wire
from gateway.adapters.base import Adapter, AdapterOptions, AdapterResources
from gateway.adapters.kit import grpc_metadata
from gateway.grpc_transport import CHANNEL_OPTIONS, channel_credentials, rpc_error
from gateway.model import (
    AgentSpec,
    Attempt,
    Event,
    InvalidRequest,
    Result,
    UpstreamError,
)


class GrpcAgentOptions(AdapterOptions):
    # The agent name to send upstream; defaults to this agent's own name.
    remote_agent: str = ""
    max_message_bytes: int = Field(default=4 * 1024 * 1024, gt=0)


class GrpcAgentAdapter(Adapter):
    kind = "grpc"
    Options = GrpcAgentOptions

    def __init__(self, spec: AgentSpec, resources: AdapterResources) -> None:
        super().__init__(spec, resources)
        self.options: GrpcAgentOptions
        secure = spec.tls is not None or spec.endpoint.startswith("grpcs://")
        target = spec.endpoint.removeprefix("grpc://").removeprefix("grpcs://")
        size = self.options.max_message_bytes
        options: list[tuple[str, Any]] = [
            *CHANNEL_OPTIONS,
            ("grpc.max_receive_message_length", size),
            ("grpc.max_send_message_length", size),
        ]
        if spec.tls is not None and spec.tls.server_name:
            options.append(("grpc.ssl_target_name_override", spec.tls.server_name))
        if secure:
            self.channel = grpc.aio.secure_channel(target, channel_credentials(spec.tls), options=options)
        else:
            self.channel = grpc.aio.insecure_channel(target, options=options)
        self.stub = pb_grpc.AgentGatewayServiceStub(self.channel)  # type: ignore[no-untyped-call]  # generated, untyped

    def _request(self, call: Attempt) -> pb.InvokeRequest:
        request = wire.invocation_to_pb(call.invocation)
        request.agent = self.options.remote_agent or self.spec.name
        return request

    async def invoke(self, call: Attempt) -> Result:
        try:
            response = await self.stub.Invoke(self._request(call), metadata=grpc_metadata(call), timeout=call.timeout())
        except grpc.aio.AioRpcError as exc:
            raise rpc_error(self.spec.name, exc) from None
        try:
            result = wire.result_from_pb(response)
        except InvalidRequest as exc:  # the agent's reply, not the caller's request, is malformed
            raise UpstreamError(f"the agent sent a malformed reply: {exc.message}", agent=self.spec.name) from None
        return Result(self.spec.name, result.messages, result.metadata)

    async def stream(self, call: Attempt) -> AsyncIterator[Event]:
        request = wire.stream_request(self._request(call))
        rpc = self.stub.InvokeStream(request, metadata=grpc_metadata(call), timeout=call.timeout())
        try:
            async for item in rpc:
                if item.HasField("event"):
                    yield wire.event_from_pb(item.event)
        except grpc.aio.AioRpcError as exc:
            raise rpc_error(self.spec.name, exc) from None
        except InvalidRequest as exc:
            raise UpstreamError(f"the agent sent a malformed event: {exc.message}", agent=self.spec.name) from None
        finally:
            rpc.cancel()

    async def aclose(self) -> None:
        await super().aclose()
        await self.channel.close()
