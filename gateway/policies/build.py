"""Named policies from YAML -> one chain per agent and per route, built once at load."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gateway.config.schema import PolicySpec
from gateway.policies.base import Handler, Policy, StreamHandler
from gateway.policies.breaker import CircuitBreakerPolicy
from gateway.policies.fallback import FallbackPolicy
from gateway.policies.limits import ConcurrencyLimitPolicy
from gateway.policies.retry import RetryPolicy
from gateway.policies.timeout import OverallTimeoutPolicy, PerTryTimeoutPolicy

DEFAULT_POLICY = "default"


def merged(names: Sequence[str], policies: Mapping[str, PolicySpec]) -> PolicySpec | None:
    """Later names override earlier ones, section by section (timeout, retry, ...)."""
    if not names:
        return None
    sections: dict[str, object] = {}
    for name in names:
        sections.update({k: v for k, v in policies[name] if v is not None})
    return PolicySpec(**sections)  # type: ignore[arg-type]


@dataclass
class PolicyRegistry:
    """The stateful policies by owner ("agent/<name>", "route/<name>"), for the admin API and metrics."""

    breakers: dict[str, CircuitBreakerPolicy] = field(default_factory=dict)
    limits: dict[str, ConcurrencyLimitPolicy] = field(default_factory=dict)
    retries: dict[str, RetryPolicy] = field(default_factory=dict)


def build_chain(
    spec: PolicySpec | None, owner: str, dispatch: Handler, open_stream: StreamHandler, registry: PolicyRegistry
) -> list[Policy]:
    """fallback > overall timeout > retry > concurrency > breaker > per-try timeout (outermost first)."""
    if spec is None:
        return []
    chain: list[Policy] = []
    if spec.fallback is not None:
        chain.append(FallbackPolicy(spec.fallback, dispatch, open_stream))
    if spec.timeout is not None and spec.timeout.overall is not None:
        chain.append(OverallTimeoutPolicy(spec.timeout.overall))
    if spec.retry is not None:
        registry.retries[owner] = RetryPolicy(spec.retry)
        chain.append(registry.retries[owner])
    if spec.concurrency is not None:
        registry.limits[owner] = ConcurrencyLimitPolicy(spec.concurrency, owner)
        chain.append(registry.limits[owner])
    if spec.circuit_breaker is not None:
        registry.breakers[owner] = CircuitBreakerPolicy(spec.circuit_breaker, owner)
        chain.append(registry.breakers[owner])
    if spec.timeout is not None and spec.timeout.per_try is not None:
        chain.append(PerTryTimeoutPolicy(spec.timeout.per_try))
    return chain
