"""A conversational A2A agent (a2a-sdk, JSON-RPC) to run the A2A TCK behind the gateway.

Each message is answered and the task then waits for the next one
(``INPUT_REQUIRED``); a message saying ``done`` completes it. So a task stays
open across a blocking ``SendMessage``, the way the TCK's multi-turn, history
and cancel tests expect, while the call still returns as A2A 1.0 says it must:
once the task is finished or interrupted.

A message whose ``messageId`` starts with ``list-test`` (the TCK's ListTasks
helper) is handled as the TCK's reference agent (a2a-java's
``FireAndForgetAgentExecutor``) handles every message: the executor sets the
task working and returns, so the SDK answers the blocking call with the task
still ``WORKING``; a background job completes it ``FINISH_AFTER`` seconds
later, unless it was cancelled first. The gateway mirrors that answer
(the A2A agent's ``mirror_blocking`` option) and follows the task to its end.

    python -m examples.tck_agent --port 9102

It needs a2a-sdk's HTTP server (the ``dev`` extra: starlette, sse-starlette, uvicorn).
"""

from __future__ import annotations

import argparse
import asyncio

import uvicorn
from a2a.helpers import new_task_from_user_message, new_text_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill, Artifact, Role, TaskState
from starlette.applications import Starlette

RPC_PATH = "/a2a/jsonrpc"
# The messages handled fire-and-forget (the TCK's ListTasks helper's ids start so).
FIRE_AND_FORGET_PREFIX = "list-test"
# Within the gateway's timeout for the agent (examples/a2a-tck.yaml: 30 s).
FINISH_AFTER = 10.0


class ConversationExecutor(AgentExecutor):
    def __init__(self, store: InMemoryTaskStore) -> None:
        self.store = store
        self.background: set[asyncio.Task[None]] = set()

    async def _finish_later(self, context: RequestContext, task_id: str) -> None:
        """The work of a fire-and-forget task, done after its call: completed, unless cancelled meanwhile."""
        await asyncio.sleep(FINISH_AFTER)
        task = await self.store.get(task_id, context.call_context)
        if task is None or task.status.state != TaskState.TASK_STATE_WORKING:
            return
        task.status.state = TaskState.TASK_STATE_COMPLETED
        task.artifacts.append(Artifact(artifact_id="result", name="result", parts=[new_text_part("done")]))
        await self.store.save(task, context.call_context)

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        if context.message is None:
            return
        task = context.current_task or new_task_from_user_message(context.message)
        await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        if context.message.message_id.startswith(FIRE_AND_FORGET_PREFIX):
            job = asyncio.create_task(self._finish_later(context, task.id))
            self.background.add(job)
            job.add_done_callback(self.background.discard)
            return  # the task stays working: the SDK answers the blocking call now
        text = context.get_user_input().strip()
        if text.lower() == "done":
            await updater.complete(new_text_message("done: goodbye", role=Role.ROLE_AGENT))
            return
        question = f"echo: {text}. Anything else? (say 'done' to finish)"
        await updater.requires_input(new_text_message(question, role=Role.ROLE_AGENT))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        if context.task_id is not None and context.context_id is not None:
            await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def build_app(base_url: str) -> Starlette:
    card = AgentCard(
        name="tck-conversation",
        description="Answers each message and asks for the next; 'done' ends the task.",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=f"{base_url}{RPC_PATH}", protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="converse", name="Converse", description="Echoes and asks for more", tags=["tck"])],
    )
    store = InMemoryTaskStore()
    handler = DefaultRequestHandler(agent_executor=ConversationExecutor(store), task_store=store, agent_card=card)
    routes = create_agent_card_routes(card) + create_jsonrpc_routes(handler, rpc_url=RPC_PATH)
    return Starlette(routes=routes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9102)
    args = parser.parse_args()
    app = build_app(f"http://{args.host}:{args.port}")
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    except OSError as exc:  # a busy port: one line, like the gateway's own
        raise SystemExit(f"tck agent: cannot listen on {args.host}:{args.port}: {exc.strerror}") from None


if __name__ == "__main__":
    main()
