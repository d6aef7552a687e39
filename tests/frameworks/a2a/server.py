"""A real a2a-sdk agent (JSON-RPC, A2A 1.0 with 0.3 compatibility) for the framework tests.

``python server.py PORT`` serves it on 127.0.0.1 with uvicorn. The executor is
scripted by the first word of the user's text:

* anything else: the task works, streams ``echo: `` and each word as artifact
  chunks, then a data part with the trace and id headers it received;
* ``fail``: the task fails with a status message;
* ``slow``: the task streams a chunk every 0.2 s for 30 s, until cancelled;
* ``later``: the executor returns with the task still working (its stream ends there, a blocking
  call answers it so) and a background job completes it 0.5 s later, with a ``done later`` artifact;
* ``hold SECONDS``: the same, completed that many seconds later (at most 30) unless cancelled first.
"""

from __future__ import annotations

import asyncio
import sys

import uvicorn
from a2a.helpers import new_data_part, new_task_from_user_message, new_text_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill, Artifact, Role, TaskState
from starlette.applications import Starlette

ECHOED_HEADERS = ("traceparent", "x-session-id", "x-request-id")


class ScriptedExecutor(AgentExecutor):
    def __init__(self, store: InMemoryTaskStore) -> None:
        self.store = store
        self.background: set[asyncio.Task[None]] = set()

    async def _finish_later(self, context: RequestContext, task_id: str, delay: float = 0.5) -> None:
        """What a worker behind the SDK does: the task finished in the store, after the call."""
        await asyncio.sleep(delay)
        task = await self.store.get(task_id, context.call_context)
        if task is None or task.status.state != TaskState.TASK_STATE_WORKING:
            return  # cancelled meanwhile
        task.status.state = TaskState.TASK_STATE_COMPLETED
        task.artifacts.append(Artifact(artifact_id="later", name="later", parts=[new_text_part("done later")]))
        await self.store.save(task, context.call_context)

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.message is not None
        task = context.current_task or new_task_from_user_message(context.message)
        await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        text = context.get_user_input()
        command = text.split(" ", 1)[0]
        if command == "fail":
            await updater.failed(new_text_message("cannot do that", role=Role.ROLE_AGENT))
            return
        if command in ("later", "hold"):
            words = text.split()
            delay = min(float(words[1]), 30.0) if command == "hold" and len(words) > 1 else 0.5
            job = asyncio.create_task(self._finish_later(context, task.id, delay))
            self.background.add(job)
            job.add_done_callback(self.background.discard)
            return
        if command == "slow":
            for index in range(150):
                await updater.add_artifact([new_text_part(f"tick {index} ")], artifact_id="ticks", append=index > 0)
                await asyncio.sleep(0.2)
            await updater.complete()
            return
        words = ["echo: ", *[f"{w} " for w in text.split()]]
        for index, word in enumerate(words):
            await updater.add_artifact([new_text_part(word)], artifact_id="answer", name="answer", append=index > 0)
        headers = context.call_context.state.get("headers", {})
        seen = {name: headers[name] for name in ECHOED_HEADERS if name in headers}
        await updater.add_artifact(
            [new_data_part({"headers": seen, "context_id": task.context_id})], artifact_id="context", name="context"
        )
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id is not None and context.context_id is not None
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def build_app(base_url: str) -> Starlette:
    card = AgentCard(
        name="scripted-a2a",
        description="Echoes, fails or runs slowly on request (agent-gateway tests).",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=f"{base_url}/a2a/jsonrpc", protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain", "application/json"],
        skills=[AgentSkill(id="echo", name="Echo", description="Echoes its input", tags=["test"])],
    )
    store = InMemoryTaskStore()
    handler = DefaultRequestHandler(agent_executor=ScriptedExecutor(store), task_store=store, agent_card=card)
    routes = create_agent_card_routes(card) + create_jsonrpc_routes(
        handler, rpc_url="/a2a/jsonrpc", enable_v0_3_compat=True
    )
    return Starlette(routes=routes)


if __name__ == "__main__":
    port = int(sys.argv[1])
    uvicorn.run(build_app(f"http://127.0.0.1:{port}"), host="127.0.0.1", port=port, log_level="warning")
