"""A coordinator agent (a2a-sdk, A2A 1.0) that delegates to agents of other frameworks through its sidecar.

It serves A2A on ``127.0.0.1:PORT`` and, for each user message, asks every
delegate agent (``$COORDINATOR_DELEGATES``, comma-separated; default
``researcher,writer``) the same question through the local gateway at
``$AGENT_GATEWAY_GRPC``, concurrently, and answers with their replies. It
passes the headers of the A2A request it is serving to the client
(``inbound=``), so each delegated call carries the caller's trace context,
session, user and remaining deadline: the gateway's spans for the delegated
calls become children of the span that called the coordinator.

    python -m examples.cross_framework.coordinator 9201
"""

from __future__ import annotations

import asyncio
import os
import sys

import uvicorn
from a2a.helpers import new_task_from_user_message, new_text_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill, Role
from starlette.applications import Starlette

from agentgateway_client import AgentClient, ClientError

DELEGATES_ENV = "COORDINATOR_DELEGATES"


def delegates() -> list[str]:
    return [name.strip() for name in os.environ.get(DELEGATES_ENV, "researcher,writer").split(",") if name.strip()]


class CoordinatorExecutor(AgentExecutor):
    """Asks each delegate through the sidecar; fails the task when one of them fails."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.message is not None
        task = context.current_task or new_task_from_user_message(context.message)
        await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        question = context.get_user_input()
        # The A2A server keeps the request's headers here: trace context, session, user, deadline.
        inbound = context.call_context.state.get("headers", {}) if context.call_context else {}
        names = delegates()
        async with AgentClient.from_env(inbound=inbound) as client:
            answers = await asyncio.gather(*(client.invoke(name, question) for name in names), return_exceptions=True)
        failed = [(name, a) for name, a in zip(names, answers, strict=True) if isinstance(a, BaseException)]
        if failed:
            reason = "; ".join(
                f"{name}: {a.message if isinstance(a, ClientError) else type(a).__name__}" for name, a in failed
            )
            await updater.failed(new_text_message(f"delegation failed: {reason}", role=Role.ROLE_AGENT))
            return
        for index, (name, answer) in enumerate(zip(names, answers, strict=True)):
            # One line per delegate: its messages' texts, space-separated.
            text = " ".join(m.text for m in answer.messages if m.text) if not isinstance(answer, BaseException) else ""
            await updater.add_artifact(
                [new_text_part(f"{name}: {text}\n")], artifact_id="answer", name="answer", append=index > 0
            )
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id is not None
        assert context.context_id is not None
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def build_app(base_url: str) -> Starlette:
    card = AgentCard(
        name="coordinator",
        description="Asks agents of other frameworks through its sidecar gateway and combines their answers.",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=f"{base_url}/a2a/jsonrpc", protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="delegate", name="Delegate", description="Fans a question out", tags=["example"])],
    )
    handler = DefaultRequestHandler(
        agent_executor=CoordinatorExecutor(), task_store=InMemoryTaskStore(), agent_card=card
    )
    routes = create_agent_card_routes(card) + create_jsonrpc_routes(handler, rpc_url="/a2a/jsonrpc")
    return Starlette(routes=routes)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9201
    uvicorn.run(build_app(f"http://127.0.0.1:{port}"), host="127.0.0.1", port=port, log_level="warning")
