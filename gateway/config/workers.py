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
