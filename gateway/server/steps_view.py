"""What a caller sees of a workflow's steps: none, their status, or every output.

A workflow's answer carries ``metadata.steps`` (and its errors
``details.steps``; its streamed ``step`` events each step's output). Inside
the gateway every check sees them whole; at the front they are cut to what
the caller may see: everything with a ``workflow_steps`` grant in the
authorization rules, otherwise what the workflow's ``steps_in_answer`` says
(``none`` by default).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.model import JSON, Event, GatewayError, Result
from gateway.pipeline import Gateway
from gateway.security.guard import ListenerGuard
from gateway.security.identity import Identity

FULL = "outputs"


@dataclass(frozen=True, slots=True)
class StepsView:
    """The cut for one caller; ``detail`` per workflow name."""

    gateway: Gateway
    guard: ListenerGuard
    identity: Identity

    def detail(self, workflow: str) -> str:
        config = self.gateway.config.workflows.get(workflow)
        if config is None:
            return FULL  # not a workflow's steps
        if self.guard.sees_steps(self.identity, workflow):
            return FULL
        return config.steps_in_answer

    def _metadata(self, metadata: Mapping[str, JSON]) -> Mapping[str, JSON]:
        workflow = metadata.get("workflow")
        if not isinstance(workflow, str) or "steps" not in metadata:
            return metadata
        detail = self.detail(workflow)
        if detail == FULL:
            return metadata
        out = {k: v for k, v in metadata.items() if k != "steps"}
        if detail == "status":
            out["steps"] = [_without_output(s) for s in metadata["steps"] or ()]
        return out

    def result(self, result: Result) -> Result:
        metadata = self._metadata(result.metadata)
        return result if metadata is result.metadata else Result(result.agent, result.messages, metadata)

    def error(self, error: GatewayError) -> GatewayError:
        details = self._metadata(error.details)
        if details is not error.details:
            error.details = details
        return error

    def event(self, event: Event) -> Event:
        data = event.data
        if data is None or not isinstance(data, Mapping):  # None first: an ABC check costs every event
            return event
        if event.type == "step" and "output" in data and isinstance(data.get("workflow"), str):
            if self.detail(data["workflow"]) == FULL:
                return event
            return Event(event.type, event.message, {k: v for k, v in data.items() if k != "output"})
        metadata = self._metadata(data)
        return event if metadata is data else Event(event.type, event.message, dict(metadata))


def _without_output(step: Any) -> Any:
    return {k: v for k, v in step.items() if k != "output"} if isinstance(step, dict) else step
