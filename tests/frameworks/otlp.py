"""A real OTLP trace receiver on loopback: the collector's gRPC TraceService and OTLP/HTTP ``/v1/traces``.

It runs on its own thread and event loop: the SDK's exporters are synchronous
and a gateway flushes them on shutdown while blocking its own loop, so a
receiver sharing that loop could never answer the final export.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from aiohttp import web
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

KIND_SERVER = 2
KIND_CLIENT = 3


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span, flattened: hex ids, its service and plain attribute values."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    service: str
    attributes: dict[str, Any] = field(default_factory=dict)


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def flatten(request: trace_service_pb2.ExportTraceServiceRequest) -> list[ReceivedSpan]:
    spans: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=span.kind,
                        service=str(resource.get("service.name", "")),
                        attributes={kv.key: _value(kv.value) for kv in span.attributes},
                    )
                )
    return spans


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, sink: Callable[[trace_service_pb2.ExportTraceServiceRequest, str], None]) -> None:
        self.sink = sink

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.aio.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.sink(request, "grpc")
        return trace_service_pb2.ExportTraceServiceResponse()


class OtlpReceiver:
    """``with OtlpReceiver() as receiver``: ``receiver.grpc_endpoint`` and ``receiver.http_endpoint`` take spans."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[ReceivedSpan] = []
        self.protocols: set[str] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="otlp-receiver", daemon=True)
        self._server: grpc.aio.Server | None = None
        self._runner: web.AppRunner | None = None
        self.grpc_endpoint = ""
        self.http_endpoint = ""

    def _sink(self, request: trace_service_pb2.ExportTraceServiceRequest, protocol: str) -> None:
        with self._lock:
            self._spans.extend(flatten(request))
            self.protocols.add(protocol)

    async def _http_export(self, request: web.Request) -> web.Response:
        if request.content_type != "application/x-protobuf":
            return web.json_response({"error": "expected application/x-protobuf"}, status=415)
        message = trace_service_pb2.ExportTraceServiceRequest.FromString(await request.read())
        self._sink(message, "http")
        body = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")

    async def _start(self) -> None:
        self._server = grpc.aio.server()
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(self._sink), self._server)
        port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        self.grpc_endpoint = f"http://127.0.0.1:{port}"
        app = web.Application()
        app.router.add_post("/v1/traces", self._http_export)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        http_port = self._runner.addresses[0][1]
        self.http_endpoint = f"http://127.0.0.1:{http_port}/v1/traces"

    async def _stop(self) -> None:
        if self._server is not None:
            await self._server.stop(None)
        if self._runner is not None:
            await self._runner.cleanup()

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    async def wait_for(self, done: Callable[[Sequence[ReceivedSpan]], bool], timeout: float = 10.0) -> list[ReceivedSpan]:
        """The spans once ``done(spans)`` holds; the spans so far when ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spans = self.spans()
            if done(spans):
                return spans
            await asyncio.sleep(0.05)
        return self.spans()
