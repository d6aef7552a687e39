"""The typed configuration, validated by pydantic. YAML keys equal field names.

Every model forbids unknown keys, so a typo is an error at load instead of a
silently ignored setting. Durations accept ``"250ms"``, ``"5s"``, ``"2m"``,
``"1h"`` or a number of seconds.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


def parse_duration(value: Any) -> float:
    """Seconds from ``"250ms"``/``"5s"``/``"2m"``/``"1h"`` or a number."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '250ms', '5s' or '2m'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError(f"expected a duration such as '250ms', '5s' or '2m', got {value!r}")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
Name = Annotated[str, Field(pattern=_NAME)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_address(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT (for example 127.0.0.1:8080), got {value!r}")
    return value


Address = Annotated[str, BeforeValidator(lambda v: _check_address(str(v)))]


class HttpListener(Strict):
    address: Address = "127.0.0.1:8080"
    # The largest request body accepted by the invoke endpoints (passthrough streams).
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)


class GrpcListener(Strict):
    address: Address = "127.0.0.1:50051"
    max_message_bytes: int = Field(default=4 * 1024 * 1024, gt=0)


class Listeners(Strict):
    http: HttpListener | None = Field(default_factory=HttpListener)
    grpc: GrpcListener | None = Field(default_factory=GrpcListener)


class Agent(Strict):
    """An upstream agent: which adapter speaks to it, and where."""

    kind: str = Field(description="adapter kind: http, grpc, langgraph, crewai, mastra, a2a")
    endpoint: str
    description: str = ""
    # Adapter-specific options, validated by the adapter's own Options model.
    options: dict[str, Any] = Field(default_factory=dict)
    # Default time budget for calls to this agent when the caller sets none.
    timeout: Duration | None = None

    @field_validator("endpoint")
    @classmethod
    def _endpoint_has_scheme_or_port(cls, value: str) -> str:
        if "://" not in value and ":" not in value:
            raise ValueError(f"expected a URL (http://host:port) or host:port, got {value!r}")
        return value


class Match(Strict):
    """Which invocations a route takes. All given conditions must hold."""

    agent: str
    # Exact header (HTTP) / metadata (gRPC) values; header names are case-insensitive.
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _lower_case(cls, value: dict[str, str]) -> dict[str, str]:
        return {k.lower(): v for k, v in value.items()}


class WeightedTarget(Strict):
    agent: Name
    weight: int = Field(ge=0)


class Route(Strict):
    """Routes the invocations it matches to one agent or a weighted split."""

    name: Name | None = None
    match: Match
    target: Name | None = None
    split: list[WeightedTarget] | None = None
    timeout: Duration | None = None

    @model_validator(mode="after")
    def _one_destination(self) -> Route:
        if (self.target is None) == (self.split is None):
            raise ValueError("a route needs exactly one of 'target' or 'split'")
        if self.split is not None and sum(t.weight for t in self.split) <= 0:
            raise ValueError("a split needs at least one target with a positive weight")
        return self

    @property
    def targets(self) -> list[str]:
        if self.split is not None:
            return [t.agent for t in self.split]
        return [self.target] if self.target else []


class Tracing(Strict):
    # OTLP endpoint; when unset the standard OTEL_EXPORTER_OTLP_* variables apply.
    otlp_endpoint: str | None = None
    otlp_protocol: Literal["grpc", "http/protobuf"] = "grpc"
    service_name: str = "agent-gateway"
    # When False, spans are still created (ids propagate) but never exported.
    export: bool = True


class Telemetry(Strict):
    tracing: Tracing = Field(default_factory=Tracing)


class Server(Strict):
    # How long SIGTERM waits for in-flight requests before closing them.
    drain_timeout: Duration = 15.0


class GatewayConfig(Strict):
    """The root of a gateway YAML file."""

    listeners: Listeners = Field(default_factory=Listeners)
    agents: dict[Name, Agent] = Field(default_factory=dict)
    routes: list[Route] = Field(default_factory=list)
    telemetry: Telemetry = Field(default_factory=Telemetry)
    server: Server = Field(default_factory=Server)
