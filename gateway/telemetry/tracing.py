"""Tracer setup and the span conventions the gateway uses.

The gateway always runs an SDK tracer provider so that every hop gets real
span ids to propagate, even when nothing is exported; its tracer (:func:`build_tracer`)
makes the spans nothing records (none exported, or unsampled) cheap non-recording ones.
Export goes to OTLP when an endpoint is configured (or set through the standard ``OTEL_`` variables).
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from gateway import __version__
from gateway.config.schema import Tracing
from gateway.telemetry.spans import GatewayTracer

TRACER_NAME = "agent-gateway"

# Attribute names: OpenTelemetry semantic conventions where they exist.
ATTR_AGENT = "gen_ai.agent.name"
ATTR_OPERATION = "gen_ai.operation.name"
ATTR_CONVERSATION = "gen_ai.conversation.id"
ATTR_SESSION = "session.id"
ATTR_USER = "enduser.id"
ATTR_REQUEST_ID = "agent_gateway.request_id"
ATTR_ROUTE = "agent_gateway.route"
ATTR_ADAPTER = "agent_gateway.adapter"
ATTR_ATTEMPT = "agent_gateway.attempt"
ATTR_BACKOFF_MS = "agent_gateway.backoff_ms"
ATTR_ERROR_TYPE = "error.type"
ATTR_HTTP_STATUS = "http.response.status_code"
ATTR_GRPC_STATUS = "rpc.grpc.status_code"
ATTR_PROVIDER = "gen_ai.provider.name"
ATTR_INPUT_TOKENS = "gen_ai.usage.input_tokens"
ATTR_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"


def _exporter(config: Tracing) -> SpanExporter | None:
    endpoint = config.otlp_endpoint
    env_set = any(os.environ.get(v) for v in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    if not config.export or (endpoint is None and not env_set):
        return None
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if config.otlp_protocol == "http/protobuf" or (endpoint is None and protocol == "http/protobuf"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        return HttpExporter(endpoint=endpoint)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

    insecure = endpoint is not None and endpoint.startswith("http://")
    return GrpcExporter(endpoint=endpoint, insecure=insecure or None)


def build_tracer_provider(config: Tracing) -> TracerProvider:
    """A provider for this gateway (not installed globally: tests run several)."""
    resource = Resource.create({"service.name": config.service_name, "service.version": __version__})
    provider = TracerProvider(resource=resource)
    if (exporter := _exporter(config)) is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def build_tracer(provider: trace.TracerProvider, config: Tracing) -> trace.Tracer:
    """The gateway's tracer on ``provider``: SDK spans for what its processors see (at the
    configured sampling), cheap non-recording spans with real ids for the rest."""
    tracer = provider.get_tracer(TRACER_NAME)
    # Not an SDK tracer (a disabled SDK's no-op one, another implementation): used as it is.
    return GatewayTracer(tracer, config.sample_ratio) if isinstance(tracer, sdk_trace.Tracer) else tracer
