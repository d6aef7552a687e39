"""Hierarchical delegation: a manager agent plans, workers do the work.

Each round the manager receives ``{"task", "workers", "round", "results"}``
and answers JSON: ``{"delegate": [{"worker": name, "input": ...}, ...]}`` to
have the gateway run workers (concurrently, each an ordinary routed call), or
``{"answer": ...}`` (or plain text) to finish. Rounds and fan-out are bounded
so a manager cannot loop forever; a manager may also call workers itself
through its sidecar with the Python client, where the hop limit bounds depth.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from gateway.config.schema import HierarchicalWorkflow
from gateway.model import DataPart, GatewayError, Result, Role
from gateway.patterns.run import WorkflowRun
from gateway.template import Template, message_for

_AS_IS = Template("{{ value }}")


def manager_reply(result: Result) -> Any:
    """The manager's JSON answer (a JSON part, or text that parses as JSON), else its text."""
    for message in result.messages:
        for part in message.parts:
            if isinstance(part, DataPart):
                return part.data
    text = result.text.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


class HierarchicalPattern:
    def __init__(self, config: HierarchicalWorkflow, descriptions: dict[str, str]) -> None:
        self.config = config
        self.input = Template(config.input)
        self.workers = [{"name": w, "description": descriptions.get(w, "")} for w in config.workers]

    async def run(self, run: WorkflowRun) -> Result:
        task = self.input.render(run.document())
        results: list[dict[str, Any]] = []
        for round_number in range(self.config.max_rounds + 1):
            brief = {"task": task, "workers": self.workers, "round": round_number, "results": results}
            step = f"manager.{round_number}"
            try:
                reply = manager_reply(await run.call(step, self.config.manager, _AS_IS, None, value=brief))
            except GatewayError as exc:
                raise run.failure(
                    f"workflow {run.name!r}: the manager {self.config.manager!r} failed in round {round_number}: "
                    f"{exc.message}",
                    exc,
                    step,
                ) from None
            delegations = reply.get("delegate") if isinstance(reply, dict) else None
            if not delegations:
                answer = reply.get("answer", reply) if isinstance(reply, dict) else reply
                return run.result((message_for(answer, Role.AGENT),))
            if round_number == self.config.max_rounds:
                break
            if not isinstance(delegations, list) or len(delegations) > self.config.max_fanout:
                raise run.failure(
                    f"workflow {run.name!r}: the manager asked for "
                    f"{len(delegations) if isinstance(delegations, list) else 'malformed'} "
                    f"delegations; at most {self.config.max_fanout} are allowed per round"
                )
            results = await self._delegate(run, round_number, delegations)
        raise run.failure(
            f"workflow {run.name!r}: the manager did not answer within {self.config.max_rounds} rounds of delegation"
        )

    async def _delegate(self, run: WorkflowRun, round_number: int, delegations: list[Any]) -> list[dict[str, Any]]:
        allowed = set(self.config.workers)

        async def one(index: int, item: Any) -> dict[str, Any]:
            worker = item.get("worker") if isinstance(item, dict) else None
            value = item.get("input", "") if isinstance(item, dict) else ""
            outcome: dict[str, Any] = {"worker": worker, "input": value}
            if worker not in allowed:
                return {
                    **outcome,
                    "status": "failed",
                    "error": f"{worker!r} is not one of the workers {sorted(allowed)}",
                }
            try:
                result = await run.call(
                    f"round{round_number}.{worker}.{index}",
                    str(worker),
                    _AS_IS,
                    self.config.worker_timeout,
                    value=value,
                )
            except GatewayError as exc:
                return {**outcome, "status": "failed", "error": exc.message}
            return {
                **outcome,
                "status": "ok",
                "output": result.text,
                "data": run.steps[f"round{round_number}.{worker}.{index}"]["data"],
            }

        return list(await asyncio.gather(*(one(i, item) for i, item in enumerate(delegations))))
