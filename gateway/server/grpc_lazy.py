"""gRPC services whose handlers, and the modules behind them, are built at their first call.

A service most gateways never hear from (the A2A binding, whose a2a-sdk messages cost
megabytes of memory; server reflection) is registered by name only; its first call, or
:meth:`LazyService.load`, imports what it needs and builds the handlers. The cost is the
one import, on that first call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import grpc

Handlers = Mapping[str, grpc.RpcMethodHandler]


class LazyService(grpc.GenericRpcHandler):  # type: ignore[misc]  # grpc ships no types
    """The methods of service ``name``, from ``build()`` the first time one is called."""

    def __init__(self, name: str, build: Callable[[], Handlers]) -> None:
        self.name = name
        self._prefix = f"/{name}/"
        self._build = build
        self._handlers: Handlers | None = None

    @property
    def loaded(self) -> bool:
        return self._handlers is not None

    def load(self) -> Handlers:
        if self._handlers is None:
            self._handlers = self._build()
        return self._handlers

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method: str = handler_call_details.method
        if not method.startswith(self._prefix):
            return None
        return self.load().get(method[len(self._prefix) :])
