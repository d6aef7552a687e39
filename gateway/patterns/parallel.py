"""Parallel fan-out with partial-failure aggregation.

Branches run concurrently, each with its own timeout. The answer is decided
as soon as enough branches succeeded (``needed``: all, 1 for ``first``, or the
quorum) and the branches still running are cancelled; it fails as soon as
too many failed for the quorum to be reachable. So the latency tracks the
slowest *needed* branch, never the sum. With ``quorum_wait: deadline`` the
quorum is a floor: late successes are awaited until the call's deadline.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.config.schema import ParallelWorkflow
from gateway.model import DataPart, GatewayError, Message, Result, Role
from gateway.patterns.run import WorkflowRun
from gateway.template import Template


class ParallelPattern:
    def __init__(self, config: ParallelWorkflow) -> None:
        self.config = config
        self.inputs = {b.name: Template(b.input) for b in config.branches}

    async def run(self, run: WorkflowRun) -> Result:
        needed = self.config.needed
        branches = {b.name: b for b in self.config.branches}
        tasks = {
            asyncio.create_task(run.call(b.name, b.agent, self.inputs[b.name], b.timeout), name=b.name): b.name
            for b in self.config.branches
        }
        successes: dict[str, Result] = {}
        failures: dict[str, GatewayError] = {}
        pending = set(tasks)
        # "At least N within the deadline" waits on past N until the deadline (then answers
        # with what succeeded); "first N" stops at N.
        enough = len(branches) if self.config.quorum_wait == "deadline" else needed
        try:
            while pending and len(successes) < enough:
                timeout = run.invocation.context.remaining()
                if len(successes) < needed:
                    timeout = None  # the branches' own deadlines end them
                finished, pending = await asyncio.wait(pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if not finished:
                    break  # the deadline passed with the quorum met: late branches are cancelled
                for task in finished:
                    name = tasks[task]
                    error = task.exception()
                    if error is None:
                        successes[name] = task.result()
                    elif isinstance(error, GatewayError):
                        failures[name] = error
                    else:
                        raise error
                if len(branches) - len(failures) < needed:
                    break
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        missing = [name for name in branches if name not in successes]
        if len(successes) < needed:
            reasons = "; ".join(f"{name}: {error.message}" for name, error in failures.items())
            first = next(iter(failures.items()), None)
            raise run.failure(
                f"workflow {run.name!r} needed {needed} of {len(branches)} branches, {len(successes)} succeeded "
                f"({reasons})",
                first[1] if first else None,
                first[0] if first else "",
            )
        ordered = [(name, successes[name]) for name in branches if name in successes]
        result = self._aggregate(run, ordered)
        metadata = {**result.metadata, "missing_branches": missing}
        return Result(result.agent, result.messages, metadata)

    def _aggregate(self, run: WorkflowRun, ordered: list[tuple[str, Result]]) -> Result:
        if self.config.aggregate == "first":
            return run.result(ordered[0][1].messages)
        if self.config.aggregate == "merge":
            merged: dict[str, Any] = {}
            for name, _ in ordered:
                data = run.steps[name].get("data")
                if isinstance(data, dict):
                    merged.update(data)
            return run.result((Message(Role.AGENT, (DataPart(merged),)),))
        messages = tuple(
            Message(Role.AGENT, m.parts, {**m.metadata, "branch": name}, m.message_id)
            for name, result in ordered
            for m in result.messages
        )
        return run.result(messages)
