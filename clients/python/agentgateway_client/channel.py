"""What every part of the client shares: the gRPC channel to the sidecar and the context of the
request the agent is serving, turned into each call's metadata and request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate

from agentgateway.v1 import gateway_pb2 as pb
from agentgateway_client import wire
from agentgateway_client.model import JSON, Message
from agentgateway_client.propagation import Context, inbound_context, inject_headers

Metadata = tuple[tuple[str, str], ...]


def messages(value: str | Message | Sequence[Message]) -> tuple[Message, ...]:
    if isinstance(value, str):
        return (Message.user(value),)
    if isinstance(value, Message):
        return (value,)
    return tuple(value)


class Sidecar:
    """The channel (made from ``target`` unless one is given, then not closed here) and the
    inbound request's headers: its trace, ids, baggage and deadline go on every call."""

    def __init__(
        self, target: str, inbound: Mapping[str, str] | None = None, channel: grpc.aio.Channel | None = None
    ) -> None:
        self._owns_channel = channel is None
        self.channel = channel or grpc.aio.insecure_channel(target)
        self._inbound = {k.lower(): v for k, v in (inbound or {}).items()}
        self._context = inbound_context(self._inbound) if inbound is not None else None

    def _trace(self) -> otel_context.Context:
        # With no inbound request, the current OpenTelemetry context is the parent.
        return propagate.extract(self._inbound) if self._inbound else otel_context.get_current()

    def metadata(self) -> Metadata:
        """The context headers of a call that is no invocation (state, runs, tools): the scope
        ids travel exactly as on a nested invoke, from the inbound request."""
        carrier: dict[str, str] = {}
        inject_headers(self._context or Context(), carrier, self._trace())
        return tuple(carrier.items())

    def prepare(
        self,
        agent: str,
        input: str | Message | Sequence[Message],
        session_id: str | None,
        thread_id: str | None,
        user_id: str | None,
        params: Mapping[str, JSON] | None,
        timeout: float | None,
        idempotent: bool,
    ) -> tuple[pb.InvokeRequest, Metadata, float | None]:
        """An invocation's request, metadata and remaining time: the inbound context, with the
        ids given here instead and the deadline tightened to ``timeout``."""
        base = self._context or Context()
        context = Context(
            session_id=session_id if session_id is not None else base.session_id,
            thread_id=thread_id if thread_id is not None else base.thread_id,
            user_id=user_id if user_id is not None else base.user_id,
            request_id=base.request_id,
            baggage=base.baggage,
            deadline=base.deadline,
        ).with_timeout(timeout)
        request = wire.invoke_request(agent, messages(input), context, params or {}, idempotent)
        carrier: dict[str, str] = {}
        inject_headers(context, carrier, self._trace())
        return request, tuple(carrier.items()), context.remaining()

    async def call(self, method: Callable[..., Awaitable[Any]], request: Any, **kwargs: Any) -> Any:
        """One unary call (with this context's metadata unless given); gRPC errors become ClientError."""
        kwargs.setdefault("metadata", self.metadata())
        try:
            return await method(request, **kwargs)
        except grpc.aio.AioRpcError as exc:
            raise wire.client_error(exc) from None

    async def aclose(self) -> None:
        if self._owns_channel:
            await self.channel.close()
