"""A Google ADK agent served as A2A by ADK itself (``to_a2a()``), for the framework tests.

``python agent_app.py PORT`` serves it on 127.0.0.1 with uvicorn. The model is
``ScriptedLlm``, a ``BaseLlm`` of our own that needs no network, scripted by
the first word of the latest user text:

* ``fail``: the model raises, so the task ends failed with the error as its message;
* ``trace``: the model calls the ``seen_trace`` tool, which reports the trace id
  the agent runs under (OpenTelemetry's current span), then answers with it;
* ``turns``: the answer counts the user texts of the ADK session (the A2A context);
* ``json``: the answer is the data parts of the user's message, as data parts (ADK carries an
  A2A data part to the model as a tagged inline blob, and back the same way);
* ``slow``: the model takes 30 s (for cancellation);
* anything else: ``echo: `` and the text.

The one addition is an ASGI middleware that reads the W3C trace context of the
request into OpenTelemetry's context (what an OpenTelemetry instrumentation of
the server does); the a2a-sdk server ADK builds on runs the agent in that context.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncGenerator

import uvicorn
from google.adk.a2a.converters.part_converter import (
    A2A_DATA_PART_END_TAG,
    A2A_DATA_PART_START_TAG,
    A2A_DATA_PART_TEXT_MIME_TYPE,
)
from google.adk.a2a.utils.agent_to_a2a import to_a2a
from google.adk.agents import LlmAgent
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.genai import types
from opentelemetry import context, propagate, trace
from starlette.types import ASGIApp, Receive, Scope, Send


def user_texts(request: LlmRequest) -> list[str]:
    return [
        part.text for content in request.contents if content.role == "user" for part in content.parts or () if part.text
    ]


def tool_result(request: LlmRequest) -> str | None:
    """The ``seen_trace`` tool's answer when the model is called again after it."""
    last = request.contents[-1] if request.contents else None
    for part in last.parts or () if last is not None else ():
        if part.function_response is not None and part.function_response.name == "seen_trace":
            return str((part.function_response.response or {}).get("result"))
    return None


def data_parts(request: LlmRequest) -> list[types.Part]:
    """The latest user content's A2A data parts, as ADK gave them to the model."""
    user = [content for content in request.contents if content.role == "user"]
    return [
        part
        for part in (user[-1].parts or () if user else ())
        if part.inline_data is not None
        and part.inline_data.mime_type == A2A_DATA_PART_TEXT_MIME_TYPE
        and (part.inline_data.data or b"").startswith(A2A_DATA_PART_START_TAG)
        and (part.inline_data.data or b"").endswith(A2A_DATA_PART_END_TAG)
    ]


def reply(*parts: types.Part) -> LlmResponse:
    return LlmResponse(content=types.Content(role="model", parts=list(parts)), turn_complete=True)


class ScriptedLlm(BaseLlm):
    """A deterministic model: no network, no weights."""

    model: str = "scripted"

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        texts = user_texts(llm_request)
        text = texts[-1] if texts else ""
        command = text.split(" ", 1)[0]
        if command == "fail":
            raise RuntimeError("cannot do that")
        if command == "slow":
            await asyncio.sleep(30)
        if command == "trace":
            seen = tool_result(llm_request)
            if seen is None:
                yield reply(types.Part(function_call=types.FunctionCall(name="seen_trace", args={})))
                return
            yield reply(types.Part(text=f"trace: {seen}"))
            return
        if command == "json":
            yield reply(*data_parts(llm_request))
            return
        if command == "turns":
            yield reply(types.Part(text=f"turn {len(texts)}: {' | '.join(texts)}"))
            return
        yield reply(types.Part(text=f"echo: {text}"))


def seen_trace() -> str:
    """The trace id of the span the agent runs under (32 hex digits, or "none")."""
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else "none"


agent = LlmAgent(
    name="adk_scripted",
    description="Scripted ADK agent (agent-gateway tests)",
    model=ScriptedLlm(),
    instruction="Answer as scripted.",
    tools=[seen_trace],
)


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
    app = to_a2a(agent, host="127.0.0.1", port=port)
    uvicorn.run(TraceContext(app), host="127.0.0.1", port=port, log_level="warning")
