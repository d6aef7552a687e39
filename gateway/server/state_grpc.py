"""The gRPC front of the state service: ``agentgateway.v1.StateService``."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
from google.protobuf.message import Message as ProtoMessage

from agentgateway.v1 import state_pb2 as spb
from gateway.json_input import DEFAULT_MAX_DEPTH
from gateway.model import InvalidRequest, NotFound
from gateway.propagation import context_from_headers
from gateway.security.guard import ListenerGuard
from gateway.server.grpc import MalformedRequest, RpcErrors, grpc_credentials, lenient
from gateway.state.access import ScopeAccess
from gateway.state.store import Scope, ScopeRef, StateRecord, StateStore, StateValue

STATE_SERVICE_NAME = spb.DESCRIPTOR.services_by_name["StateService"].full_name

T = TypeVar("T")

SCOPE_FROM_PB = {
    spb.STATE_SCOPE_SESSION: Scope.SESSION,
    spb.STATE_SCOPE_THREAD: Scope.THREAD,
    spb.STATE_SCOPE_USER: Scope.USER,
    spb.STATE_SCOPE_WORKFLOW: Scope.WORKFLOW,
}
SCOPE_TO_PB = {v: k for k, v in SCOPE_FROM_PB.items()}
DEFAULT_PAGE_SIZE = 100


def entry_to_pb(scope: ScopeRef, record: StateRecord) -> spb.StateEntry:
    entry = spb.StateEntry(
        scope=SCOPE_TO_PB[scope.scope],
        scope_id=scope.id,
        key=record.key,
        etag=record.etag,
        version=record.version,
    )
    if record.value.is_json:
        entry.json = record.value.payload.decode()
    else:
        entry.bytes = record.value.payload
    entry.update_time.FromNanoseconds(round(record.updated_at * 1e9))
    if record.expires_at is not None:
        entry.expire_time.FromNanoseconds(round(record.expires_at * 1e9))
    return entry


def page_token(after: str | None) -> str:
    return base64.urlsafe_b64encode(after.encode()).decode() if after else ""


def after_from_token(token: str) -> str:
    if not token:
        return ""
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidRequest("the page token is not one this gateway issued") from None


class StateServicer:
    """GetState, PutState, DeleteState and ListState on the configured store, scoped by the caller's context."""

    def __init__(
        self, store: StateStore, access: ScopeAccess, guard: ListenerGuard, max_json_depth: int = DEFAULT_MAX_DEPTH
    ) -> None:
        self.store = store
        self.access = access
        self.guard = guard
        self.max_json_depth = max_json_depth

    def _scope(self, request: ProtoMessage | MalformedRequest, context: grpc.aio.ServicerContext) -> ScopeRef:
        credentials = grpc_credentials(context)
        identity = self.guard.authenticate(credentials)
        if isinstance(request, MalformedRequest):
            raise InvalidRequest(f"the request is not a valid agentgateway.v1 state request: {request.reason}")
        scope = SCOPE_FROM_PB.get(request.scope)  # type: ignore[attr-defined]
        if scope is None:
            raise InvalidRequest("'scope' is required: STATE_SCOPE_SESSION, _THREAD, _USER or _WORKFLOW")
        headers = self.guard.headers_for(credentials.headers, identity)
        granted = self.guard.granted_scopes(identity)
        return self.access.resolve(scope, request.scope_id, context_from_headers(headers), granted)  # type: ignore[attr-defined]

    async def _serve(
        self,
        method: str,
        request: ProtoMessage | MalformedRequest,
        context: grpc.aio.ServicerContext,
        work: Callable[[ScopeRef], Awaitable[T]],
    ) -> T:
        async with RpcErrors(context, f"StateService/{method}"):
            return await work(self._scope(request, context))
        raise AssertionError("unreachable: RpcErrors aborts")

    async def GetState(self, request: spb.GetStateRequest, context: grpc.aio.ServicerContext) -> spb.GetStateResponse:
        async def work(scope: ScopeRef) -> spb.GetStateResponse:
            record = await self.store.get(scope, request.key)
            if record is None:
                raise NotFound(f"no state key {request.key!r} in the {scope.scope.value} scope")
            return spb.GetStateResponse(entry=entry_to_pb(scope, record))

        return await self._serve("GetState", request, context, work)

    async def PutState(self, request: spb.PutStateRequest, context: grpc.aio.ServicerContext) -> spb.PutStateResponse:
        async def work(scope: ScopeRef) -> spb.PutStateResponse:
            kind = request.WhichOneof("value")
            if kind == "json":
                value = StateValue.of_json_text(request.json, self.max_json_depth)
            elif kind == "bytes":
                value = StateValue.of_bytes(request.bytes)
            else:
                raise InvalidRequest("a put needs a value: set 'json' (JSON text) or 'bytes'")
            ttl = None
            if request.HasField("ttl"):
                ttl = request.ttl.ToTimedelta().total_seconds()
                if ttl <= 0:
                    raise InvalidRequest("'ttl' must be positive")
            record = await self.store.put(
                scope,
                request.key,
                value,
                if_match=request.if_match or None,
                if_none_match=request.if_none_match,
                ttl=ttl,
            )
            return spb.PutStateResponse(entry=entry_to_pb(scope, record))

        return await self._serve("PutState", request, context, work)

    async def DeleteState(
        self, request: spb.DeleteStateRequest, context: grpc.aio.ServicerContext
    ) -> spb.DeleteStateResponse:
        async def work(scope: ScopeRef) -> spb.DeleteStateResponse:
            if not await self.store.delete(scope, request.key, if_match=request.if_match or None):
                raise NotFound(f"no state key {request.key!r} in the {scope.scope.value} scope")
            return spb.DeleteStateResponse()

        return await self._serve("DeleteState", request, context, work)

    async def ListState(
        self, request: spb.ListStateRequest, context: grpc.aio.ServicerContext
    ) -> spb.ListStateResponse:
        async def work(scope: ScopeRef) -> spb.ListStateResponse:
            page = await self.store.list(
                scope,
                request.prefix,
                after=after_from_token(request.page_token),
                limit=request.page_size or DEFAULT_PAGE_SIZE,
            )
            return spb.ListStateResponse(
                entries=[entry_to_pb(scope, r) for r in page.records], next_page_token=page_token(page.next_after)
            )

        return await self._serve("ListState", request, context, work)


def state_method_handlers(servicer: StateServicer) -> dict[str, grpc.RpcMethodHandler]:
    def unary(
        method: Callable[..., Awaitable[ProtoMessage]], request: type[ProtoMessage], response: type[ProtoMessage]
    ) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(
            method, request_deserializer=lenient(request.FromString), response_serializer=response.SerializeToString
        )

    return {
        "GetState": unary(servicer.GetState, spb.GetStateRequest, spb.GetStateResponse),
        "PutState": unary(servicer.PutState, spb.PutStateRequest, spb.PutStateResponse),
        "DeleteState": unary(servicer.DeleteState, spb.DeleteStateRequest, spb.DeleteStateResponse),
        "ListState": unary(servicer.ListState, spb.ListStateRequest, spb.ListStateResponse),
    }
