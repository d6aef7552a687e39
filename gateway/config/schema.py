"""The typed configuration, validated by pydantic. YAML keys equal field names.

Every model forbids unknown keys, so a typo is an error at load instead of a
silently ignored setting. Durations accept ``"250ms"``, ``"5s"``, ``"2m"``,
``"1h"`` or a number of seconds.

This module holds the root (`GatewayConfig`) and the process-wide sections; each other
section lives in a module of its own (listeners, policies, routes, workflows, evaluations,
security, telemetry, state, bus, runs, mcp) and is re-exported here, so
``from gateway.config.schema import X`` keeps working for every model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from gateway.config.base import Address, Duration, Name, Strict, check_unique, parse_duration
from gateway.config.bus import Bus, Prefix, Redelivery, Subject, SubjectPattern, Trigger
from gateway.config.evaluations import CheckConfig, CheckKind, Evaluation
from gateway.config.listeners import (
    AdminListener,
    AuthMethod,
    Cors,
    GrpcListener,
    HttpListener,
    ListenerCommon,
    Listeners,
    ServerTls,
)
from gateway.config.mcp import McpConfig, McpMember, McpRevision, McpStreams, McpUpstream, McpVirtualServer
from gateway.config.policies import (
    Backoff,
    CircuitBreakerSpec,
    ConcurrencySpec,
    FallbackCondition,
    FallbackSpec,
    FallbackTarget,
    PolicySpec,
    RetryBudget,
    RetryCondition,
    RetrySpec,
    StaticResponse,
    TimeoutSpec,
)
from gateway.config.routes import Agent, AgentTls, Match, Route, ValueMatch, WeightedTarget
from gateway.config.runs import RunsConfig, Webhooks
from gateway.config.security import ApiKey, AuthzRule, JwtAuth, MtlsAuth, RateLimit, Security, TokenBudget
from gateway.config.state import RedisState, SqliteState, StateConfig, StateLimits, StateScopeName, StateTtl
from gateway.config.telemetry import LoggingConfig, Telemetry, Tracing
from gateway.config.workflows import (
    Branch,
    Compensation,
    Condition,
    HierarchicalWorkflow,
    ParallelWorkflow,
    SequentialWorkflow,
    Step,
    TemplateValue,
    WaitSpec,
    Workflow,
    WorkflowCommon,
)

__all__ = [
    "A2AConfig",
    "Address",
    "AdminListener",
    "Agent",
    "AgentTls",
    "ApiKey",
    "AuthMethod",
    "AuthzRule",
    "Backoff",
    "Branch",
    "Bus",
    "CheckConfig",
    "CheckKind",
    "CircuitBreakerSpec",
    "Compensation",
    "ConcurrencySpec",
    "Condition",
    "Cors",
    "Duration",
    "Evaluation",
    "FallbackCondition",
    "FallbackSpec",
    "FallbackTarget",
    "GatewayConfig",
    "GrpcListener",
    "HierarchicalWorkflow",
    "HttpListener",
    "JwtAuth",
    "ListenerCommon",
    "Listeners",
    "LoggingConfig",
    "Match",
    "McpConfig",
    "McpMember",
    "McpRevision",
    "McpStreams",
    "McpUpstream",
    "McpVirtualServer",
    "MtlsAuth",
    "Name",
    "ParallelWorkflow",
    "PolicySpec",
    "Prefix",
    "RateLimit",
    "Redelivery",
    "RedisState",
    "RetryBudget",
    "RetryCondition",
    "RetrySpec",
    "Route",
    "RunsConfig",
    "Security",
    "SequentialWorkflow",
    "Server",
    "ServerTls",
    "SqliteState",
    "StateConfig",
    "StateLimits",
    "StateScopeName",
    "StateTtl",
    "StaticResponse",
    "Step",
    "Strict",
    "Subject",
    "SubjectPattern",
    "Telemetry",
    "TemplateValue",
    "TimeoutSpec",
    "TokenBudget",
    "Tracing",
    "Trigger",
    "ValueMatch",
    "WaitSpec",
    "Webhooks",
    "WeightedTarget",
    "Workflow",
    "WorkflowCommon",
    "parse_duration",
]


class Server(Strict):
    """Process-wide behaviour: shutdown and loop protection."""

    # On SIGTERM, how long calls in flight may still run; one still running then is answered
    # UNAVAILABLE (HTTP 503, an SSE error event, gRPC UNAVAILABLE), and the process exits.
    drain_timeout: Duration = 15.0
    # Calls through gateways (and workflow steps) nest at most this deep, so a
    # manager or a workflow cannot loop forever; counted in the baggage entry agw.hops.
    max_hops: int = Field(default=16, ge=1, le=256)
    # The calls one request tree may make in total (every routed call, workflow step and
    # delegation, at every depth), counted in the baggage entries agw.tree/agw.calls and
    # enforced by every gateway the tree passes: hops bound depth, this bounds breadth.
    max_calls: int = Field(default=1000, ge=1, le=1_000_000)
    # Re-read the config file this often and apply agents, routes, policies, workflows and
    # checks without a restart (null: only on POST /reload of the admin listener).
    config_watch: Duration | None = 5.0
    # Worker processes serving every listener (HTTP and gRPC), each on its own core; `--workers`
    # overrides it. Above 1, a supervising process holds the ports, restarts a worker that dies,
    # drains them all on SIGTERM and serves the admin listener with every worker's metrics and
    # health; the workers share only the state and bus backends (and breakers with storage: redis),
    # so the state needs a file or Redis and triggers need the nats bus. Linux only (SO_REUSEPORT).
    workers: int = Field(default=1, ge=1, le=64)
    # How many characters of an agent's own error reply (which may hold a stack trace) callers see,
    # in the error's `details.upstream_body`; 0: none. The failure log (agent_gateway.failures) has it.
    upstream_body_excerpt: int = Field(default=0, ge=0, le=4096)
    # The client of every upstream HTTP request the adapters and the passthrough send: lean, the
    # gateway's own HTTP/1.1 client (keep-alive pool, TLS, no proxies, redirects or cookies), or
    # aiohttp, aiohttp's ClientSession (the escape hatch, 100-350 us more CPU per call: bench/README.md). Read at start.
    upstream_client: Literal["lean", "aiohttp"] = "lean"
    # The server of the HTTP listener: native, the gateway's own HTTP/1.1 server (httptools), which
    # answers invoke, stream and passthrough calls itself and hands every other request to aiohttp's
    # handlers; or aiohttp, aiohttp's server for everything (the escape hatch, about a quarter more
    # CPU per invoke: bench/README.md). Read at start.
    http_server: Literal["native", "aiohttp"] = "native"


class A2AConfig(Strict):
    """The A2A front (``/a2a/{agent}``) and discovery (``/.well-known/agent-card.json``, ``/a2a``)."""

    # The agent the origin's agent card describes (an agent or a route's agent name);
    # without one the card describes the gateway and lists its agents as skills.
    default_agent: Name | None = None


class GatewayConfig(Strict):
    """The root of a gateway YAML file."""

    @model_validator(mode="after")
    def _auth_methods_configured(self) -> GatewayConfig:
        for name, listener in (("http", self.listeners.http), ("grpc", self.listeners.grpc)):
            if listener is None:
                continue
            if "jwt" in listener.auth and self.security.jwt is None:
                raise ValueError(f"listeners.{name}.auth has jwt but security.jwt is not configured")
            if "api_key" in listener.auth and not self.security.api_keys:
                raise ValueError(f"listeners.{name}.auth has api_key but security.api_keys is empty")
            if "mtls" in listener.auth and (listener.tls is None or listener.tls.client_cert == "none"):
                raise ValueError(f"listeners.{name}.auth has mtls but its tls does not ask for client certificates")
        return self

    listeners: Listeners = Field(default_factory=Listeners)
    # Health, metrics, breakers, reload; null disables it.
    admin: AdminListener | None = Field(default_factory=AdminListener)
    policies: dict[Name, PolicySpec] = Field(default_factory=dict)
    agents: dict[Name, Agent] = Field(default_factory=dict)
    routes: list[Route] = Field(default_factory=list)
    # Named workflows (sequential, parallel, hierarchical), callable like agents.
    workflows: dict[Name, Workflow] = Field(default_factory=dict)
    checks: dict[Name, CheckConfig] = Field(default_factory=dict)
    evaluations: list[Evaluation] = Field(default_factory=list)
    # Inbound authentication, authorization and rate limits.
    security: Security = Field(default_factory=Security)
    telemetry: Telemetry = Field(default_factory=Telemetry)
    server: Server = Field(default_factory=Server)
    # null disables the state service.
    state: StateConfig | None = Field(default_factory=StateConfig)

    bus: Bus = Field(default_factory=Bus)
    triggers: list[Trigger] = Field(default_factory=list)
    # Background runs; they need the state service (``state`` not null).
    runs: RunsConfig = Field(default_factory=RunsConfig)
    # The MCP gateway (tool servers federated behind /mcp/<virtual server>).
    mcp: McpConfig = Field(default_factory=McpConfig)
    a2a: A2AConfig = Field(default_factory=A2AConfig)

    @model_validator(mode="after")
    def _key_routes(self) -> GatewayConfig:
        for index, route in enumerate(self.routes):
            route._key = route.name or f"routes[{index}]"
        return self

    @model_validator(mode="after")
    def _a2a_default_agent_exists(self) -> GatewayConfig:
        name = self.a2a.default_agent
        if name is not None and name not in self.agents and not any(r.match.agent == name for r in self.routes):
            raise ValueError(f"a2a.default_agent {name!r} is neither an agent nor a route's agent name")
        return self

    @model_validator(mode="after")
    def _completion_subject_on_bus(self) -> GatewayConfig:
        subject = self.runs.completion_subject
        if subject is not None and subject.split(".")[0] not in self.bus.prefixes:
            raise ValueError(
                f"runs.completion_subject {subject!r} must start with one of the bus prefixes {self.bus.prefixes}"
            )
        return self

    @model_validator(mode="after")
    def _unique_triggers(self) -> GatewayConfig:
        check_unique([t.name for t in self.triggers], "trigger")
        return self
