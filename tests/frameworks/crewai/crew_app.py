"""A real CrewAI crew with a deterministic LLM, served by gateway/hosts/crewai.py.

Runs in the CrewAI environment (``.venvs/crewai``) with the repository root on
PYTHONPATH: ``python crew_app.py PORT [BEARER_TOKEN]``.

The fake LLM answers from the task prompt, so the crew's behaviour is picked by
its ``topic`` input: ``slow ...`` takes 3 s per LLM call, ``steady ...`` 0.3 s
(long enough for a poll to see a task in progress), ``fail ...`` raises.
The answer names the session id and trace id of the kickoff request, read
through :func:`gateway.hosts.crewai.kickoff_context`, to prove propagation.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")
os.environ.setdefault("OTEL_SDK_DISABLED", "true")  # this process runs only the crew

# The telemetry switches above must be set before crewai is imported.
from crewai import Agent, BaseLLM, Crew, Process, Task

from gateway.hosts.crewai import kickoff_context, serve_crew

DELAYS = {"slow": 3.0, "steady": 0.3}


class ScriptedLLM(BaseLLM):
    """Answers ``Final Answer: <stage> about <topic> ...`` without any model."""

    def call(
        self,
        messages: str | list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        callbacks: list[Any] | None = None,
        available_functions: dict[str, Any] | None = None,
        from_task: Any = None,
        from_agent: Any = None,
        response_model: Any = None,
        **kwargs: Any,
    ) -> str:
        prompt = messages if isinstance(messages, str) else str(messages[-1]["content"])
        topic = prompt.split("TOPIC<<", 1)[1].split(">>", 1)[0] if "TOPIC<<" in prompt else "nothing"
        stage = "draft" if "STAGE=research" in prompt else "report"
        if topic.startswith("fail"):
            raise RuntimeError(f"the scripted LLM refuses {topic!r}")
        time.sleep(DELAYS.get(topic.split(" ", 1)[0], 0.0))
        context = kickoff_context()
        headers = context.headers if context else {}
        trace_id = headers.get("traceparent", "--").split("-")[1]
        answer = f"{stage} about {topic} (session={headers.get('x-session-id', '')}, trace={trace_id})"
        return f"Thought: I now can give a great answer\nFinal Answer: {answer}"

    def supports_function_calling(self) -> bool:
        return False


def build_crew() -> Crew:
    llm = ScriptedLLM(model="scripted")
    researcher = Agent(role="Researcher", goal="Research {topic}", backstory="Deterministic.", llm=llm,
                       allow_delegation=False)
    writer = Agent(role="Writer", goal="Write about {topic}", backstory="Deterministic.", llm=llm,
                   allow_delegation=False)
    research = Task(name="research", description="STAGE=research TOPIC<<{topic}>>", expected_output="notes",
                    agent=researcher)
    write = Task(name="write", description="STAGE=write TOPIC<<{topic}>>", expected_output="one line",
                 agent=writer)
    return Crew(agents=[researcher, writer], tasks=[research, write], process=Process.sequential)


if __name__ == "__main__":
    serve_crew(build_crew, "127.0.0.1", int(sys.argv[1]), bearer_token=sys.argv[2] if len(sys.argv) > 2 else "")
