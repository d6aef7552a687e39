"""What several worker processes (``server.workers`` > 1) cannot share, found at load.

Each worker is a whole gateway in its own process; only the backends outside the
process (a SQLite file, Redis, NATS) are common to them. A backend that lives in one
process's memory would silently split: an event published to one worker would never
reach the triggers of another, an A2A task made by one would be "not found" at the
next. Those are refused here, with the file, line and path. Per-process limits
(breakers with storage: memory, rate limits, bulkheads, retry budgets) still work,
each worker counting its own share; docs/operations.md says so.
"""

from __future__ import annotations

from gateway.config.problems import ProblemList
from gateway.config.schema import GatewayConfig, SequentialWorkflow


def worker_problems(config: GatewayConfig, out: ProblemList) -> None:
    """Problems of running ``config`` in ``server.workers`` processes (none for one)."""
    workers = config.server.workers
    if workers == 1:
        return
    each = f"server.workers is {workers}, and each worker is its own process"
    if config.state is None:
        out.add(
            ("state",),
            f"{each}: without a state backend A2A tasks live in one worker's memory and the other workers "
            "answer 'task not found'; keep a state backend (the SQLite file default, or redis), or set "
            "server.workers: 1",
        )
    elif config.state.backend == "sqlite" and config.state.sqlite.path == ":memory:":
        out.add(
            ("state", "sqlite", "path"),
            f"{each}: a ':memory:' database is private to one worker (state, runs and A2A tasks would split); "
            "give a file path, or use backend: redis",
        )
    if config.bus.backend == "memory":
        consumers = [f"triggers[{i}]" for i in range(len(config.triggers))]
        consumers += [
            f"workflows.{name}.{step.name}"
            for name, workflow in config.workflows.items()
            if isinstance(workflow, SequentialWorkflow)
            for step in workflow.steps
            if step.wait is not None and step.wait.subject is not None
        ]
        if consumers:
            out.add(
                ("bus", "backend"),
                f"{each}: the memory bus lives inside one process, so {', '.join(consumers[:3])}"
                f"{' and more' if len(consumers) > 3 else ''} would see only the events published to "
                "their own worker; use bus.backend: nats (shared by every worker), or server.workers: 1",
            )


def worker_caveats(config: GatewayConfig) -> list[str]:
    """What works per worker rather than for the whole gateway, with ``server.workers`` > 1
    (logged at start; docs/operations.md has the list)."""
    workers = config.server.workers
    if workers == 1:
        return []
    out = []
    local = sorted(
        name
        for name, policy in config.policies.items()
        if policy.circuit_breaker is not None and policy.circuit_breaker.storage == "memory"
    )
    if local:
        out.append(
            f"circuit breakers of policies {', '.join(local)} are per worker (storage: memory): each of the "
            f"{workers} workers opens its own; storage: redis makes them trip together"
        )
    if config.security.rate_limits or config.security.token_budgets:
        out.append(
            f"rate limits and token budgets are counted per worker: an identity whose calls reach all "
            f"{workers} workers may get up to {workers} times its limit"
        )
    if any(p.concurrency is not None for p in config.policies.values()):
        out.append(f"concurrency limits (bulkheads) are per worker: up to {workers} times max_in_flight in all")
    if config.mcp.virtual_servers:
        out.append(
            "MCP 2025-11-25 sessions live in the worker that made them: a client whose next connection "
            "reaches another worker is answered 404 and initializes again (2026-07-28 clients are sessionless)"
        )
    if any(u.command is not None for u in config.mcp.upstreams.values()):
        out.append(f"every worker launches its own stdio MCP upstreams ({workers} copies of each)")
    return out
