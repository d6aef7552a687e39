"""Deterministic LangGraph graphs served by ``langgraph dev`` in the framework tests.

Runs in the LangGraph venv (``.venvs/langgraph``), never in the gateway's.

* ``chat``: a fake chat model from langchain-core answers ``you said <text>``
  (streamed word by word, which drives ``stream_mode=messages``), then a node
  answers ``turn <n>`` plus a structured block echoing the context headers the
  gateway sent (traceparent, session and request ids, surfaced through
  ``http.configurable_headers``): turns count up on a thread, so a second call
  proves it saw the first one's state.
* ``boom``: its node raises, for the error paths.
* ``slow``: a node that dawdles for a minute, reporting progress as custom
  stream events, for cancellation (a cancelled run ends ``interrupted``).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

ECHOED_HEADERS = ("traceparent", "x-session-id", "x-request-id", "x-thread-id")


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    turns: int
    seen_headers: dict[str, str]


def chat(state: State) -> dict[str, Any]:
    text = str(state["messages"][-1].content)
    # A fresh model per call: its iterator of answers is used up after one answer.
    model = GenericFakeChatModel(messages=iter([f"you said {text}"]))
    return {"messages": [model.invoke(state["messages"])], "turns": state.get("turns", 0) + 1}


def report(state: State, config: RunnableConfig) -> dict[str, Any]:
    configurable = config.get("configurable") or {}
    seen = {name: str(configurable[name]) for name in ECHOED_HEADERS if name in configurable}
    # A text block plus a structured block: the gateway maps them to a text and a data part.
    content: list[str | dict[str, Any]] = [
        {"type": "text", "text": f"turn {state.get('turns', 0)}"},
        {"type": "context", "seen_headers": seen},
    ]
    # Usage as a LangChain chat model reports it, so the gateway's token accounting has something real to read.
    usage = {"input_tokens": 7, "output_tokens": 4, "total_tokens": 11}
    return {"seen_headers": seen, "messages": [AIMessage(content=content, usage_metadata=usage)]}


def explode(state: State) -> dict[str, Any]:
    raise ValueError("boom from node")


_chat = StateGraph(State)
_chat.add_node("chat", chat)
_chat.add_node("report", report)
_chat.add_edge(START, "chat")
_chat.add_edge("chat", "report")
_chat.add_edge("report", END)
chat_graph = _chat.compile()

_boom = StateGraph(State)
_boom.add_node("explode", explode)
_boom.add_edge(START, "explode")
_boom.add_edge("explode", END)
boom_graph = _boom.compile()


async def dawdle(state: State) -> dict[str, Any]:
    write = get_stream_writer()
    for step in range(600):
        write({"progress": step})
        await asyncio.sleep(0.1)
    return {"messages": [AIMessage(content="finally done")]}


_slow = StateGraph(State)
_slow.add_node("dawdle", dawdle)
_slow.add_edge(START, "dawdle")
_slow.add_edge("dawdle", END)
slow_graph = _slow.compile()


async def delegate(state: State, config: RunnableConfig) -> dict[str, Any]:
    """Ask a CrewAI crew and a Mastra agent through the local sidecar (the gateway's HTTP
    front at ``configurable.sidecar``), forwarding this run's trace and session, so the
    three frameworks' calls share one trace, parent to child."""
    import httpx  # the LangGraph environment has it (langgraph-sdk depends on it)

    configurable = config.get("configurable") or {}
    headers = {name: str(configurable[name]) for name in ("traceparent", "x-session-id") if name in configurable}
    question = str(state["messages"][-1].content)
    answers = []
    async with httpx.AsyncClient(base_url=str(configurable["sidecar"]), timeout=30) as client:
        for agent in ("crew", "writer"):
            body = {"messages": [{"role": "ROLE_USER", "parts": [{"text": question}]}]}
            response = await client.post(f"/v1/agents/{agent}/invoke", json=body, headers=headers)
            response.raise_for_status()
            parts = response.json()["messages"][0]["parts"]
            answers.append(f"{agent}: " + "".join(p.get("text", "") for p in parts))
    return {"messages": [AIMessage(content=" | ".join(answers))]}


_delegate = StateGraph(State)
_delegate.add_node("delegate", delegate)
_delegate.add_edge(START, "delegate")
_delegate.add_edge("delegate", END)
delegate_graph = _delegate.compile()
