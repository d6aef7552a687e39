"""The gRPC binding of A2A 1.0 towards an upstream agent: ``lf.a2a.v1.A2AService`` (a2a.proto
as the a2a-sdk package ships it generated).

Requests and answers cross as their protobuf JSON, the same 1.0 JSON the JSON-RPC binding
carries in ``params`` and ``result``, so the A2A adapter maps either binding with one code path.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc
from a2a.types import a2a_pb2 as a2a_pb
from a2a.types import a2a_pb2_grpc as a2a_grpc
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError

from gateway.adapters.base import CANCEL_TIMEOUT
from gateway.adapters.kit import grpc_metadata
from gateway.grpc_transport import CHANNEL_OPTIONS, channel_credentials, rpc_error
from gateway.model import Attempt, UpstreamError, UpstreamTls


class A2AGrpcUpstream:
    """One A2A agent over gRPC: its channel, its tenant and the metadata it is sent."""

    def __init__(
        self, agent: str, target: str, tenant: str, static_metadata: Mapping[str, str], tls: UpstreamTls | None
    ) -> None:
        self.agent = agent
        self.target = target
        self.tenant = tenant
        self.static_metadata = dict(static_metadata)
        if tls is not None:
            self.channel = grpc.aio.secure_channel(target, channel_credentials(tls), options=CHANNEL_OPTIONS)
        else:
            self.channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        self.stub = a2a_grpc.A2AServiceStub(self.channel)  # type: ignore[no-untyped-call]  # generated, untyped

    def _metadata(self, call: Attempt) -> tuple[tuple[str, str], ...]:
        return grpc_metadata(call, self.static_metadata, deadline_header=False)  # the gRPC deadline carries it

    def _request(self, params: Mapping[str, Any]) -> a2a_pb.SendMessageRequest:
        try:
            request = ParseDict(dict(params), a2a_pb.SendMessageRequest(), ignore_unknown_fields=True)
        except ParseError as exc:
            raise UpstreamError(f"the message does not fit a2a.proto: {exc}", agent=self.agent) from None
        if self.tenant:
            request.tenant = self.tenant
        return request

    async def send(self, call: Attempt, params: Mapping[str, Any]) -> dict[str, Any]:
        """``SendMessage``: the ``SendMessageResponse`` as 1.0 JSON (``{"task"}`` or ``{"message"}``)."""
        try:
            response = await self.stub.SendMessage(
                self._request(params), metadata=self._metadata(call), timeout=call.timeout()
            )
        except grpc.aio.AioRpcError as exc:
            raise rpc_error(self.agent, exc) from None
        return MessageToDict(response)

    async def stream(self, call: Attempt, params: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """``SendStreamingMessage``: each ``StreamResponse`` as 1.0 JSON."""
        rpc = self.stub.SendStreamingMessage(
            self._request(params), metadata=self._metadata(call), timeout=call.timeout()
        )
        try:
            async for frame in rpc:
                yield MessageToDict(frame)
        except grpc.aio.AioRpcError as exc:
            raise rpc_error(self.agent, exc) from None
        finally:
            rpc.cancel()

    async def get(self, call: Attempt, task_id: str) -> dict[str, Any]:
        """``GetTask``: the task as 1.0 JSON."""
        request = a2a_pb.GetTaskRequest(id=task_id, tenant=self.tenant)
        try:
            task = await self.stub.GetTask(request, metadata=self._metadata(call), timeout=call.timeout())
        except grpc.aio.AioRpcError as exc:
            raise rpc_error(self.agent, exc) from None
        return MessageToDict(task)

    async def cancel(self, call: Attempt, task_id: str) -> None:
        request = a2a_pb.CancelTaskRequest(id=task_id, tenant=self.tenant)
        with contextlib.suppress(grpc.aio.AioRpcError):  # best effort: the task may have ended meanwhile
            await self.stub.CancelTask(request, metadata=self._metadata(call), timeout=CANCEL_TIMEOUT)

    async def aclose(self) -> None:
        await self.channel.close()
