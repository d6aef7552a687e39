"""CrewAI adapter: the kickoff API that deployed crews expose (CrewAI AMP).

``POST /kickoff`` with ``{"inputs": ..., "meta": ...}`` answers a
``kickoff_id``; ``GET /status/{id}`` (older deployments: ``GET /{id}/status``)
is polled until the crew is done. Both status shapes are accepted:
``status: running|completed|error`` and ``state: RUNNING|SUCCESS|FAILED``.
Polling honours the call's deadline; a stream reports progress as ``status``
events and ends with the crew's output. ``gateway/hosts/crewai.py`` serves a
user's own Crew over this API.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from pydantic import Field

from gateway.adapters.base import Adapter, AdapterOptions, AdapterResources
from gateway.adapters.kit import call_ids, refined, structured_input, upstream_status
from gateway.adapters.usage import token_usage
from gateway.model import (
    JSON,
    AgentSpec,
    Attempt,
    DataPart,
    Event,
    Message,
    Result,
    Role,
    TextPart,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRejected,
    UpstreamTimeout,
)

_DONE = {"completed", "success", "succeeded"}
_FAILED = {"error", "failed", "failure"}


class CrewAIOptions(AdapterOptions):
    bearer_token: str = ""
    # Seconds between status polls (CrewAI's own client polls once a second).
    poll_interval: float = Field(default=1.0, gt=0)
    # The crew input that receives the caller's text when no structured inputs are given.
    text_input: str = "input"
    # Inputs always sent (merged under the caller's).
    default_inputs: dict[str, Any] = Field(default_factory=dict)


def crew_inputs(call: Attempt, text_input: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """Inputs from ``params.inputs``, else a JSON object part, else the text under ``text_input``."""
    params = call.invocation.options.params
    if isinstance(params.get("inputs"), dict):
        return {**defaults, **params["inputs"]}
    for message in reversed(call.invocation.messages):
        if (found := structured_input(message, text_input)) is not None:
            return {**defaults, **found}
    return dict(defaults)


def _state(status: dict[str, Any]) -> str:
    return str(status.get("state") or status.get("status") or "").lower()


class CrewAIAdapter(Adapter):
    kind = "crewai"
    Options = CrewAIOptions

    def __init__(self, spec: AgentSpec, resources: AdapterResources) -> None:
        super().__init__(spec, resources)
        self.options: CrewAIOptions
        headers = {"authorization": f"Bearer {self.options.bearer_token}"} if self.options.bearer_token else {}
        self.transport = resources.transports(resources.http, spec.name, spec.endpoint, headers, tls=spec.tls)
        self._status_path = "/status/{id}"

    async def kickoff(self, call: Attempt) -> str:
        inputs = crew_inputs(call, self.options.text_input, self.options.default_inputs)
        body = {"inputs": inputs, "meta": call_ids(call.context)}
        try:
            _, reply = await self.transport.request_json(call, "POST", "/kickoff", body)
        except UpstreamRejected as exc:
            raise self._explain_rejection(exc) from exc
        if not isinstance(reply, dict) or not isinstance(reply.get("kickoff_id"), str):
            raise UpstreamError("the crew's kickoff answer has no kickoff_id", agent=self.spec.name)
        kickoff_id: str = reply["kickoff_id"]
        return kickoff_id

    def _explain_rejection(self, exc: UpstreamRejected) -> UpstreamRejected:
        """A 422 names the crew inputs that were missing: say which, and how to send them."""
        if upstream_status(exc) != 422:
            return exc
        try:
            body = json.loads(exc.upstream_body)
            missing = body["details"]["missing_inputs"]
        except (ValueError, KeyError, TypeError):
            return exc
        return refined(
            exc,
            UpstreamRejected,
            f"the crew needs inputs {', '.join(map(str, missing))}: send them in params.inputs, or set the "
            f"agent's options.text_input (now {self.options.text_input!r}) to the input that takes the text",
        )

    async def status(self, call: Attempt, kickoff_id: str) -> dict[str, Any]:
        path = self._status_path.format(id=kickoff_id)
        status, body = await self.transport.request_json(call, "GET", path, allow_statuses=frozenset({404}))
        unknown_execution = isinstance(body, dict) and "error" in body
        if status == 404 and not unknown_execution and self._status_path == "/status/{id}":
            # No such route: older deployments serve /{id}/status; remember whichever works.
            self._status_path = "/{id}/status"
            return await self.status(call, kickoff_id)
        if status == 404 or not isinstance(body, dict):
            raise UpstreamNotFound(f"the crew lost track of kickoff {kickoff_id}", agent=self.spec.name)
        return body

    async def _poll(self, call: Attempt) -> AsyncIterator[dict[str, Any]]:
        """Each status until a final one (yielded last); honours the deadline."""
        kickoff_id = await self.kickoff(call)
        deadline = call.context.deadline
        while True:
            status = await self.status(call, kickoff_id)
            status.setdefault("kickoff_id", kickoff_id)
            yield status
            if _state(status) in _DONE | _FAILED:
                return
            wait = self.options.poll_interval
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise UpstreamTimeout(
                        f"the crew was still running at the deadline (kickoff {kickoff_id})", agent=self.spec.name
                    )
                wait = min(wait, remaining)
            await asyncio.sleep(wait)

    def _final(self, status: dict[str, Any]) -> Result:
        if _state(status) in _FAILED:
            raise UpstreamError(
                f"the crew failed: {status.get('error') or 'no reason given'}",
                agent=self.spec.name,
                details={"kickoff_id": status.get("kickoff_id")},
            )
        result = status.get("result")
        output = result.get("output") if isinstance(result, dict) else result
        parts = (TextPart(output),) if isinstance(output, str) else (DataPart(output),)
        metadata: dict[str, JSON] = {"kickoff_id": status.get("kickoff_id")}
        if isinstance(result, dict) and "tasks" in result:
            metadata["tasks"] = result["tasks"]
        if "execution_time" in status:
            metadata["execution_time"] = status["execution_time"]
        usage = token_usage(result.get("token_usage")) if isinstance(result, dict) else None
        return Result(self.spec.name, (Message(Role.AGENT, parts),), metadata, usage)

    async def invoke(self, call: Attempt) -> Result:
        final: dict[str, Any] = {}
        async for status in self._poll(call):
            final = status
        return self._final(final)

    async def stream(self, call: Attempt) -> AsyncIterator[Event]:
        last_progress: Any = None
        async for status in self._poll(call):
            progress = (status.get("current_task"), status.get("progress"))
            if _state(status) in _DONE | _FAILED:
                result = self._final(status)
                for message in result.messages:
                    yield Event("message", message=message, data=dict(result.metadata))
            elif progress != last_progress:
                last_progress = progress
                yield Event(
                    "status", data={k: status[k] for k in ("kickoff_id", "current_task", "progress") if k in status}
                )
