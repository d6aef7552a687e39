"""Tracing and logging."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gateway.config.base import Strict


class Tracing(Strict):
    """OpenTelemetry tracing: W3C context always propagates; spans export over OTLP."""

    # OTLP endpoint; when unset the standard OTEL_EXPORTER_OTLP_* variables apply.
    otlp_endpoint: str | None = None
    # The OTLP transport of the endpoint (4317 is usually grpc, 4318 http/protobuf).
    otlp_protocol: Literal["grpc", "http/protobuf"] = "grpc"
    # service.name of the gateway's spans.
    service_name: str = "agent-gateway"
    # When False, spans are still created (ids propagate) but never exported.
    export: bool = True
    # The share of new traces (calls arriving without a traceparent) sampled and exported, 0 to 1;
    # a call continuing a trace follows its caller's sampled flag instead. Unsampled calls still
    # get span ids and pass the flag (off) on to agents; their spans cost next to nothing.
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)


class LoggingConfig(Strict):
    """Logs: JSON lines (one access line per call, one failure record per failed call) or text."""

    # JSON lines or plain text.
    format: Literal["json", "text"] = "json"
    # The least severe level written.
    level: Literal["debug", "info", "warning", "error"] = "info"
    # The access log (logger agent_gateway.access, INFO): off to keep only failures.
    access_log: bool = True
    # How much of a call's input failure records carry: none, the first 200 characters, or all.
    payloads: Literal["none", "summary", "full"] = "summary"
    # Extra field names whose values are masked in every record (authorization, api keys,
    # tokens, passwords and secrets are always masked).
    redact: list[str] = Field(default_factory=list)


class Telemetry(Strict):
    """Traces (OTLP), logs; metrics are served on the admin listener."""

    tracing: Tracing = Field(default_factory=Tracing)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
