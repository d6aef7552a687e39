"""A Pydantic AI agent served as A2A by the framework itself, for the framework tests.

``python agent_app.py PORT`` serves it on 127.0.0.1 with uvicorn. Pydantic AI 2
moved ``Agent.to_a2a()`` into FastA2A as ``fasta2a.pydantic_ai.agent_to_a2a``:
that is what serves it, unchanged. The model is Pydantic AI's own
``FunctionModel``, scripted by the first word of the latest user prompt:

* ``fail``: the model raises, so the task ends failed;
* ``trace``: the model calls the ``seen_trace`` tool, which reports the trace id
  the agent runs under (OpenTelemetry's current span), then answers with it;
* ``json``: the answer is structured output (a data part);
* ``turns``: the answer counts the user prompts of the conversation so far;
* anything else: ``echo: `` and each word, streamed as separate chunks.

The one addition is an ASGI middleware that reads the W3C trace context of the
request into OpenTelemetry's context (what an OpenTelemetry instrumentation of
the server does): FastA2A hands the request's current span to the worker that
runs the agent.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from fasta2a.pydantic_ai import agent_to_a2a
from opentelemetry import context, propagate, trace
from pydantic import BaseModel
from pydantic_ai import Agent, ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.messages import UserPromptPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from starlette.types import ASGIApp, Receive, Scope, Send

# The structured answer to ``json``: every JSON type, nested.
READING: dict[str, Any] = {
    "count": 3,
    "ratio": 0.25,
    "ok": True,
    "none": None,
    "tags": ["a", "b"],
    "nested": {"x": [1, {"y": "z"}]},
}


class Reading(BaseModel):
    values: dict[str, Any]


def user_prompts(messages: list[ModelMessage]) -> list[str]:
    return [
        part.content
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, UserPromptPart) and isinstance(part.content, str)
    ]


def tool_result(messages: list[ModelMessage]) -> str | None:
    """The ``seen_trace`` tool's answer when the model is called again after it."""
    last = messages[-1]
    for part in last.parts if isinstance(last, ModelRequest) else ():
        if isinstance(part, ToolReturnPart) and part.tool_name == "seen_trace":
            return str(part.content)
    return None


def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """The whole answer (the non-streamed path and the tool/structured turns)."""
    prompts = user_prompts(messages)
    command = prompts[-1].split(" ", 1)[0] if prompts else ""
    if command == "fail":
        raise RuntimeError("cannot do that")
    if command == "trace":
        seen = tool_result(messages)
        if seen is None:
            return ModelResponse(parts=[ToolCallPart("seen_trace", {})])
        return ModelResponse(parts=[TextPart(f"trace: {seen}")])
    if command == "json":
        output_tool = info.output_tools[0].name
        return ModelResponse(parts=[ToolCallPart(output_tool, {"values": READING})])
    if command == "turns":
        return ModelResponse(parts=[TextPart(f"turn {len(prompts)}: {' | '.join(prompts)}")])
    return ModelResponse(parts=[TextPart("".join(words(prompts[-1] if prompts else "")))])


def words(text: str) -> list[str]:
    return ["echo: ", *[f"{w} " for w in text.split()]]


async def stream_answer(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
    """The streamed path: the echo word by word; the scripted turns as one chunk of their answer."""
    response = answer(messages, info)
    for index, part in enumerate(response.parts):
        if isinstance(part, ToolCallPart):
            yield {index: DeltaToolCall(name=part.tool_name, json_args=part.args_as_json_str())}
            return
    prompts = user_prompts(messages)
    command = prompts[-1].split(" ", 1)[0] if prompts else ""
    if command in ("trace", "turns"):
        yield "".join(p.content for p in response.parts if isinstance(p, TextPart))
        return
    for word in words(prompts[-1] if prompts else ""):
        yield word


agent: Agent[None, str | Reading] = Agent(
    FunctionModel(answer, stream_function=stream_answer),
    name="pydantic-ai-scripted",
    output_type=[str, Reading],
)


@agent.tool_plain
def seen_trace() -> str:
    """The trace id of the span the agent runs under (32 hex digits, or "none")."""
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else "none"


class TraceContext:
    """Reads the request's ``traceparent`` into OpenTelemetry's context for the request's lifetime."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        token = context.attach(propagate.extract(carrier))
        try:
            await self.app(scope, receive, send)
        finally:
            context.detach(token)


if __name__ == "__main__":
    port = int(sys.argv[1])
    app = agent_to_a2a(agent, url=f"http://127.0.0.1:{port}/", description="Scripted Pydantic AI agent")
    uvicorn.run(TraceContext(app), host="127.0.0.1", port=port, log_level="warning")
