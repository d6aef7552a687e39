"""Prometheus metrics: calls, attempts, retries, fallbacks, streams, breakers and bulkheads.

One registry per gateway (several gateways can share a test process). Names
follow Prometheus conventions: ``agw_`` prefix, base units, ``_total`` counters.
Breaker and bulkhead gauges are read from the live policies at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# Sub-millisecond hops up to long agent runs.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
BREAKER_STATES = {"closed": 0, "half-open": 1, "open": 2}


class BreakerState(Protocol):
    @property
    def state(self) -> str: ...


class BulkheadState(Protocol):
    @property
    def in_flight(self) -> int: ...
    @property
    def queued(self) -> int: ...


class PolicyStates(Protocol):
    """The live stateful policies by owner, as telemetry reads them; ``policies.build.PolicyRegistry``
    is one, structurally: telemetry sits below the policies it observes."""

    @property
    def breakers(self) -> Mapping[str, BreakerState]: ...
    @property
    def limits(self) -> Mapping[str, BulkheadState]: ...


class PolicyStateCollector(Collector):
    """Breaker states and bulkhead occupancy, read when Prometheus scrapes."""

    def __init__(self, policies: Callable[[], PolicyStates]) -> None:
        self.policies = policies

    def collect(self) -> Iterator[GaugeMetricFamily]:
        registry = self.policies()
        state = GaugeMetricFamily(
            "agw_circuit_breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open.", labels=["owner"]
        )
        for owner, breaker in registry.breakers.items():
            state.add_metric([owner], BREAKER_STATES.get(breaker.state, -1))
        in_flight = GaugeMetricFamily("agw_concurrency_in_flight", "Calls holding a bulkhead slot.", labels=["owner"])
        queued = GaugeMetricFamily("agw_concurrency_queued", "Calls waiting for a bulkhead slot.", labels=["owner"])
        for owner, limit in registry.limits.items():
            in_flight.add_metric([owner], limit.in_flight)
            queued.add_metric([owner], limit.queued)
        yield from (state, in_flight, queued)


class GatewayMetrics:
    """The gateway's metrics; ``child(metric, *labels)`` caches labelled children, because
    prometheus_client's ``labels()`` costs a few microseconds and every call makes several."""

    def child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def __init__(self, policies: Callable[[], PolicyStates]) -> None:
        # Label values are bounded (agents, routes, outcomes), so the cache is too.
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "agw_requests",
            "Calls handled, by the agent name called, the route and the outcome (a gRPC code).",
            ["agent", "route", "outcome"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "agw_request_duration_seconds",
            "Whole-call latency as the caller sees it (streams: until the end).",
            ["agent", "route", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("agw_requests_in_flight", "Calls in progress.", ["agent"], registry=r)
        self.attempts = Counter(
            "agw_upstream_attempts", "Upstream attempts, by agent and outcome.", ["agent", "outcome"], registry=r
        )
        self.attempt_seconds = Histogram(
            "agw_upstream_attempt_duration_seconds",
            "One upstream attempt's latency.",
            ["agent", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.retries = Counter("agw_retries", "Retries made (attempts after the first).", ["agent"], registry=r)
        self.fallbacks = Counter("agw_fallbacks", "Calls answered by a fallback.", ["agent", "target"], registry=r)
        self.streams_open = Gauge("agw_streams_open", "Streams currently relayed.", ["agent"], registry=r)
        self.streams = Counter("agw_streams", "Streams relayed, by outcome.", ["agent", "outcome"], registry=r)
        # gen_ai.token.type values: input, output.
        self.tokens = Counter(
            "agw_tokens", "Model tokens the agents reported using.", ["agent", "route", "type"], registry=r
        )
        self.checks = Counter(
            "agw_evaluation_checks", "Evaluation check results.", ["target", "check", "passed"], registry=r
        )
        self.mcp_tool_calls = Counter(
            "agw_mcp_tool_calls",
            "MCP tool calls to upstreams, by upstream/tool and outcome.",
            ["tool", "outcome"],
            registry=r,
        )
        self.mcp_tool_seconds = Histogram(
            "agw_mcp_tool_call_duration_seconds",
            "One MCP tool call attempt's latency.",
            ["tool", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        r.register(PolicyStateCollector(policies))
