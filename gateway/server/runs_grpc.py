"""The gRPC front of background runs: ``agentgateway.v1.RunService`` (see runs.proto)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc
from google.protobuf.message import Message as ProtoMessage

from agentgateway.v1 import gateway_pb2 as pb
from agentgateway.v1 import runs_pb2 as rpb
from gateway import wire
from gateway.model import GatewayError, InvalidRequest
from gateway.pipeline import Gateway
from gateway.propagation import SESSION_ID
from gateway.runs.manager import RunManager
from gateway.runs.messages import error_pb, event_pb, result_pb, run_to_pb
from gateway.runs.store import RunRecord, StoredEvent
from gateway.security.guard import ListenerGuard
from gateway.security.identity import Identity
from gateway.server.grpc import MalformedRequest, RpcErrors, grpc_credentials, lenient
from gateway.server.inbound import inbound_call, rpc_span, server_span
from gateway.server.relay import Relay
from gateway.server.steps_view import StepsView

RUN_SERVICE_NAME = rpb.DESCRIPTOR.services_by_name["RunService"].full_name
DEFAULT_PAGE_SIZE = 50

T = TypeVar("T")


async def abort_with_detail(context: grpc.aio.ServicerContext, detail: pb.ErrorDetail) -> None:
    """Abort with a stored run error (its status code and ErrorDetail trailer)."""
    code = grpc.StatusCode[detail.code] if detail.code in grpc.StatusCode.__members__ else grpc.StatusCode.UNKNOWN
    await context.abort(code, detail.message, trailing_metadata=((wire.ERROR_TRAILER, detail.SerializeToString()),))


class RunServicer:
    """SubmitRun, GetRun, GetRunResult, ListRuns, CancelRun and WatchRun on the run manager."""

    def __init__(self, runs: RunManager, gateway: Gateway, guard: ListenerGuard) -> None:
        self.runs = runs
        self.gateway = gateway  # for its config (a workflow's steps view); runs call through an Invoker
        self.guard = guard

    def _caller(
        self, request: ProtoMessage | MalformedRequest, context: grpc.aio.ServicerContext
    ) -> tuple[Identity, dict[str, str]]:
        # Authenticate before looking at the request, so strangers learn nothing from parse errors.
        credentials = grpc_credentials(context)
        identity = self.guard.authenticate(credentials)
        if isinstance(request, MalformedRequest):
            raise InvalidRequest(f"the request is not a valid agentgateway.v1 run request: {request.reason}")
        return identity, self.guard.headers_for(credentials.headers, identity)

    async def _serve(
        self,
        method: str,
        request: ProtoMessage | MalformedRequest,
        context: grpc.aio.ServicerContext,
        work: Callable[[Identity, dict[str, str]], Awaitable[T]],
    ) -> T:
        async with RpcErrors(context, f"RunService/{method}"):
            identity, headers = self._caller(request, context)
            return await work(identity, headers)
        raise AssertionError("unreachable: RpcErrors aborts")

    async def SubmitRun(
        self, request: rpb.SubmitRunRequest, context: grpc.aio.ServicerContext
    ) -> rpb.SubmitRunResponse:
        async def work(identity: Identity, headers: dict[str, str]) -> rpb.SubmitRunResponse:
            # The submit call's own deadline is not the run's: only options.timeout limits a run.
            inbound = inbound_call(wire.request_data_from_pb(request.invocation), headers, self.guard, identity)
            invocation = inbound.invocation
            self.guard.authorize(identity, invocation.agent)
            name, attributes = rpc_span(RUN_SERVICE_NAME, "SubmitRun")
            with server_span(self.runs.gateway.tracer, name, inbound.parent, invocation.context, attributes):
                view = StepsView(self.gateway, self.guard, identity)
                record = await self.runs.submit(invocation, identity.name, request.webhook_url, view)
            return rpb.SubmitRunResponse(run=run_to_pb(record))

        return await self._serve("SubmitRun", request, context, work)

    async def GetRun(self, request: rpb.GetRunRequest, context: grpc.aio.ServicerContext) -> rpb.GetRunResponse:
        async def work(identity: Identity, headers: dict[str, str]) -> rpb.GetRunResponse:
            return rpb.GetRunResponse(run=run_to_pb(await self.runs.get(request.run_id, identity.name)))

        return await self._serve("GetRun", request, context, work)

    async def GetRunResult(
        self, request: rpb.GetRunResultRequest, context: grpc.aio.ServicerContext
    ) -> rpb.GetRunResultResponse:
        async def work(identity: Identity, headers: dict[str, str]) -> RunRecord:
            return await self.runs.result(request.run_id, identity.name)

        record = await self._serve("GetRunResult", request, context, work)
        if record.result is None:
            await abort_with_detail(context, error_pb(record))
        return rpb.GetRunResultResponse(result=result_pb(record))

    async def ListRuns(self, request: rpb.ListRunsRequest, context: grpc.aio.ServicerContext) -> rpb.ListRunsResponse:
        async def work(identity: Identity, headers: dict[str, str]) -> rpb.ListRunsResponse:
            session_id = request.session_id or headers.get(SESSION_ID, "")
            if not session_id:
                raise InvalidRequest("name the session: set session_id (or send x-session-id)")
            page = await self.runs.list_session(
                session_id, identity.name, before=request.page_token, limit=request.page_size or DEFAULT_PAGE_SIZE
            )
            return rpb.ListRunsResponse(runs=[run_to_pb(r) for r in page.runs], next_page_token=page.next_before or "")

        return await self._serve("ListRuns", request, context, work)

    async def CancelRun(
        self, request: rpb.CancelRunRequest, context: grpc.aio.ServicerContext
    ) -> rpb.CancelRunResponse:
        async def work(identity: Identity, headers: dict[str, str]) -> rpb.CancelRunResponse:
            return rpb.CancelRunResponse(run=run_to_pb(await self.runs.cancel(request.run_id, identity.name)))

        return await self._serve("CancelRun", request, context, work)

    async def WatchRun(
        self, request: rpb.WatchRunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[rpb.WatchRunResponse]:
        watch = _WatchMessages()
        async with RpcErrors(context, "RunService/WatchRun"):
            identity, _ = self._caller(request, context)
            # A watcher that hangs up ends its follow (grpc.aio cancels it); the run goes on.
            relay = Relay(self.runs.follow(request.run_id, identity.name, request.after_sequence), watch)
            async with contextlib.aclosing(relay.frames()) as messages:
                async for message in messages:
                    yield message
        final = watch.final
        if final is not None:
            if final.result is None:
                await abort_with_detail(context, error_pb(final))
            yield rpb.WatchRunResponse(result=result_pb(final))


class _WatchMessages:
    """A run's stored events as messages; its record, the follow's last item, is kept for the
    answer after the error mapping (a failed run aborts with its own error detail)."""

    def __init__(self) -> None:
        self.final: RunRecord | None = None

    def event(self, item: StoredEvent | RunRecord) -> rpb.WatchRunResponse | None:
        if isinstance(item, RunRecord):
            self.final = item
            return None
        return rpb.WatchRunResponse(event=event_pb(item))

    def end(self) -> None:
        return None

    def error(self, error: GatewayError) -> rpb.WatchRunResponse:
        raise error


def run_method_handlers(servicer: RunServicer) -> dict[str, grpc.RpcMethodHandler]:
    def unary(
        method: Callable[..., Awaitable[ProtoMessage]], request: type[ProtoMessage], response: type[ProtoMessage]
    ) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(
            method, request_deserializer=lenient(request.FromString), response_serializer=response.SerializeToString
        )

    return {
        "SubmitRun": unary(servicer.SubmitRun, rpb.SubmitRunRequest, rpb.SubmitRunResponse),
        "GetRun": unary(servicer.GetRun, rpb.GetRunRequest, rpb.GetRunResponse),
        "GetRunResult": unary(servicer.GetRunResult, rpb.GetRunResultRequest, rpb.GetRunResultResponse),
        "ListRuns": unary(servicer.ListRuns, rpb.ListRunsRequest, rpb.ListRunsResponse),
        "CancelRun": unary(servicer.CancelRun, rpb.CancelRunRequest, rpb.CancelRunResponse),
        "WatchRun": grpc.unary_stream_rpc_method_handler(
            servicer.WatchRun,
            request_deserializer=lenient(rpb.WatchRunRequest.FromString),
            response_serializer=rpb.WatchRunResponse.SerializeToString,
        ),
    }
