"""The gRPC binding of A2A 1.0 (spec §10): the official ``lf.a2a.v1.A2AService`` beside our
services on the gRPC listener.

The messages are the official ``a2a.proto``'s, as the a2a-sdk package ships them generated
(``a2a.types.a2a_pb2``), so the wire contract is the specification's own. A request names
its agent by ``tenant`` (each agent card's gRPC interface carries its agent's name there, and
SDK clients send it back); an empty tenant means ``a2a.default_agent``. Requests and answers go
through the same operations as the JSON-RPC and REST bindings, as their protobuf JSON.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from a2a.types import a2a_pb2 as a2a_pb
from google.protobuf import any_pb2, empty_pb2
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from google.protobuf.message import Message as ProtoMessage
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]  # .pyi without py.typed

from gateway.config.schema import GrpcListener
from gateway.model import GatewayError, InvalidRequest, NotFound
from gateway.security.guard import ListenerGuard
from gateway.server.a2a import A2A_GRPC_SERVICE, A2AFront, check_version, error_reason
from gateway.server.a2a_operations import Caller, TaskFrames
from gateway.server.grpc import MalformedRequest, RpcErrors, grpc_credentials, hung_up, lenient
from gateway.server.relay import Bounds, Relay, cancels_on_disconnect
from gateway.tasks.errors import A2AError

STATUS_DETAILS_KEY = "grpc-status-details-bin"
P = TypeVar("P", bound=ProtoMessage)


def _proto(message: type[P], data: Any) -> P:
    try:
        return ParseDict(data, message(), ignore_unknown_fields=True)
    except ParseError as exc:  # our own answer did not fit the proto: a bug, not the caller's
        raise RuntimeError(f"an A2A answer does not fit {message.DESCRIPTOR.full_name}: {exc}") from exc


async def abort_a2a(context: grpc.aio.ServicerContext, error: A2AError) -> None:
    """Abort with the spec's status code and, in ``grpc-status-details-bin``, a ``google.rpc.Status``
    whose ``ErrorInfo`` names the A2A error (SDK clients raise the matching error from it)."""
    code = grpc.StatusCode[error.code.value]
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=error_reason(error.a2a_code), domain="a2a-protocol.org"))
    status = status_pb2.Status(code=code.value[0], message=error.message, details=[detail])
    await context.abort(code, error.message, trailing_metadata=((STATUS_DETAILS_KEY, status.SerializeToString()),))


class _StreamResponses:
    """Frames as ``StreamResponse`` messages; an error is the call's status."""

    def event(self, item: dict[str, Any]) -> a2a_pb.StreamResponse:
        return _proto(a2a_pb.StreamResponse, item)

    def end(self) -> None:
        return None

    def error(self, error: GatewayError) -> a2a_pb.StreamResponse:
        raise error


class A2AGrpcServicer:
    """Every A2AService method over the A2A operations of one :class:`A2AFront`."""

    def __init__(self, front: A2AFront, guard: ListenerGuard, listener: GrpcListener | None = None) -> None:
        self.front = front
        self.operations = front.operations
        self.guard = guard
        # The gRPC listener's stream bounds and cancel_on_disconnect hold for its A2A streams.
        self.listener = listener or GrpcListener()

    def _caller(self, request: ProtoMessage | MalformedRequest, context: grpc.aio.ServicerContext) -> Caller:
        # Authenticate before looking at the request, so strangers learn nothing from parse errors.
        credentials = grpc_credentials(context)
        identity = self.guard.authenticate(credentials)
        if isinstance(request, MalformedRequest):
            raise InvalidRequest(f"the request is not a valid {A2A_GRPC_SERVICE} request: {request.reason}")
        check_version(credentials.headers.get("a2a-version", ""))
        agent = getattr(request, "tenant", "") or self.front.gateway.config.a2a.default_agent or ""
        if agent not in self.front.agent_names():
            raise NotFound(
                f"no agent or route named {agent!r}: name it in the request's tenant"
                " (the agent card's gRPC interface gives it)"
            )
        self.guard.authorize(identity, agent)
        return Caller(agent, identity, self.guard.headers_for(credentials.headers, identity), self.guard)

    async def _unary(
        self,
        method: str,
        request: ProtoMessage | MalformedRequest,
        context: grpc.aio.ServicerContext,
        answer: type[P],
        work: Callable[[Caller, dict[str, Any]], Awaitable[Any]],
    ) -> P:
        async with RpcErrors(context, f"A2AService/{method}"):
            caller = self._caller(request, context)
            assert not isinstance(request, MalformedRequest)
            params = MessageToDict(request)
            params.pop("tenant", None)
            try:
                return _proto(answer, await work(caller, params))
            except A2AError as exc:
                await abort_a2a(context, exc)
        raise AssertionError("unreachable: RpcErrors aborts")

    async def _streaming(
        self,
        method: str,
        request: ProtoMessage | MalformedRequest,
        context: grpc.aio.ServicerContext,
        work: Callable[[Caller, dict[str, Any]], Awaitable[TaskFrames]],
    ) -> AsyncIterator[a2a_pb.StreamResponse]:
        async with RpcErrors(context, f"A2AService/{method}"):
            caller = self._caller(request, context)
            assert not isinstance(request, MalformedRequest)
            params = MessageToDict(request)
            params.pop("tenant", None)
            try:
                frames = await work(caller, params)
                listener, agent = self.listener, caller.agent
                relay = Relay(
                    frames,
                    _StreamResponses(),
                    bounds=Bounds.of(listener, agent),
                    cancels=cancels_on_disconnect(listener, self.front.gateway.cancels_on_disconnect(agent)),
                    caller_gone=hung_up,
                    cancel_upstream=frames.cancel,
                )
                async with contextlib.aclosing(relay.frames()) as responses:
                    async for response in responses:
                        yield response
            except A2AError as exc:
                await abort_a2a(context, exc)

    async def SendMessage(self, request: Any, context: grpc.aio.ServicerContext) -> a2a_pb.SendMessageResponse:
        return await self._unary("SendMessage", request, context, a2a_pb.SendMessageResponse, self.operations.send)

    async def SendStreamingMessage(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        # An async generator itself: grpc.aio tells streaming handlers apart by that.
        async for frame in self._streaming("SendStreamingMessage", request, context, self.operations.stream):
            yield frame

    async def GetTask(self, request: Any, context: grpc.aio.ServicerContext) -> a2a_pb.Task:
        return await self._unary("GetTask", request, context, a2a_pb.Task, self.operations.get_task)

    async def ListTasks(self, request: Any, context: grpc.aio.ServicerContext) -> a2a_pb.ListTasksResponse:
        return await self._unary("ListTasks", request, context, a2a_pb.ListTasksResponse, self.operations.list_tasks)

    async def CancelTask(self, request: Any, context: grpc.aio.ServicerContext) -> a2a_pb.Task:
        return await self._unary("CancelTask", request, context, a2a_pb.Task, self.operations.cancel_task)

    async def SubscribeToTask(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async for frame in self._streaming("SubscribeToTask", request, context, self.operations.subscribe):
            yield frame

    async def CreateTaskPushNotificationConfig(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._unary(
            "CreateTaskPushNotificationConfig",
            request,
            context,
            a2a_pb.TaskPushNotificationConfig,
            self.operations.create_push_config,
        )

    async def GetTaskPushNotificationConfig(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._unary(
            "GetTaskPushNotificationConfig",
            request,
            context,
            a2a_pb.TaskPushNotificationConfig,
            self.operations.get_push_config,
        )

    async def ListTaskPushNotificationConfigs(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._unary(
            "ListTaskPushNotificationConfigs",
            request,
            context,
            a2a_pb.ListTaskPushNotificationConfigsResponse,
            self.operations.list_push_configs,
        )

    async def DeleteTaskPushNotificationConfig(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async def work(caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
            await self.operations.delete_push_config(caller, params)
            return {}

        return await self._unary("DeleteTaskPushNotificationConfig", request, context, empty_pb2.Empty, work)

    async def GetExtendedAgentCard(self, request: Any, context: grpc.aio.ServicerContext) -> a2a_pb.AgentCard:
        async def work(caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
            return self.front.extended_card_of(caller)

        return await self._unary("GetExtendedAgentCard", request, context, a2a_pb.AgentCard, work)


def a2a_method_handlers(servicer: A2AGrpcServicer) -> dict[str, grpc.RpcMethodHandler]:
    def unary(method: Any, request: type[ProtoMessage], response: type[ProtoMessage]) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(
            method, request_deserializer=lenient(request.FromString), response_serializer=response.SerializeToString
        )

    def streaming(method: Any, request: type[ProtoMessage]) -> grpc.RpcMethodHandler:
        return grpc.unary_stream_rpc_method_handler(
            method,
            request_deserializer=lenient(request.FromString),
            response_serializer=a2a_pb.StreamResponse.SerializeToString,
        )

    return {
        "SendMessage": unary(servicer.SendMessage, a2a_pb.SendMessageRequest, a2a_pb.SendMessageResponse),
        "SendStreamingMessage": streaming(servicer.SendStreamingMessage, a2a_pb.SendMessageRequest),
        "GetTask": unary(servicer.GetTask, a2a_pb.GetTaskRequest, a2a_pb.Task),
        "ListTasks": unary(servicer.ListTasks, a2a_pb.ListTasksRequest, a2a_pb.ListTasksResponse),
        "CancelTask": unary(servicer.CancelTask, a2a_pb.CancelTaskRequest, a2a_pb.Task),
        "SubscribeToTask": streaming(servicer.SubscribeToTask, a2a_pb.SubscribeToTaskRequest),
        "CreateTaskPushNotificationConfig": unary(
            servicer.CreateTaskPushNotificationConfig,
            a2a_pb.TaskPushNotificationConfig,
            a2a_pb.TaskPushNotificationConfig,
        ),
        "GetTaskPushNotificationConfig": unary(
            servicer.GetTaskPushNotificationConfig,
            a2a_pb.GetTaskPushNotificationConfigRequest,
            a2a_pb.TaskPushNotificationConfig,
        ),
        "ListTaskPushNotificationConfigs": unary(
            servicer.ListTaskPushNotificationConfigs,
            a2a_pb.ListTaskPushNotificationConfigsRequest,
            a2a_pb.ListTaskPushNotificationConfigsResponse,
        ),
        "DeleteTaskPushNotificationConfig": unary(
            servicer.DeleteTaskPushNotificationConfig, a2a_pb.DeleteTaskPushNotificationConfigRequest, empty_pb2.Empty
        ),
        "GetExtendedAgentCard": unary(
            servicer.GetExtendedAgentCard, a2a_pb.GetExtendedAgentCardRequest, a2a_pb.AgentCard
        ),
    }
