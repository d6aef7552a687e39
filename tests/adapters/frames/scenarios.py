"""The calls whose upstream exchanges ``record.py`` keeps from the real framework servers and
``tests/adapters/test_recorded_frames.py`` replays through a ``MockUpstream``.

A scenario is one adapter call with fixed ids (so the recorded paths, which hold ids derived
from them, replay as they were recorded). The recorded base URL is written as ``ENDPOINT``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.model import JSON, AgentSpec, Attempt, Context, Invocation, Message, Options

FRAMES_DIR = Path(__file__).parent
ENDPOINT = "http://agent.test"


@dataclass(frozen=True)
class Scenario:
    name: str  # the frames file: FRAMES_DIR / f"{name}.json"
    server: str  # the framework test server it is recorded from (tests/frameworks/apps.py)
    kind: str
    text: str
    stream: bool = False
    agent: str = "agent"
    options: dict[str, Any] = field(default_factory=dict)
    session_id: str = ""
    thread_id: str = ""
    params: dict[str, JSON] = field(default_factory=dict)

    def spec(self, endpoint: str = ENDPOINT) -> AgentSpec:
        options = {k: v.replace(ENDPOINT, endpoint) if isinstance(v, str) else v for k, v in self.options.items()}
        return AgentSpec(self.agent, self.kind, endpoint, options)

    def call(self, timeout: float = 20.0) -> Attempt:
        context = Context(session_id=self.session_id, thread_id=self.thread_id, request_id=f"req-{self.name}")
        invocation = Invocation(
            self.agent, (Message.user(self.text),), context.with_timeout(timeout), Options(params=self.params)
        )
        # The id headers the gateway's propagation sends with them (gateway/propagation.py).
        ids = {"x-session-id": self.session_id, "x-thread-id": self.thread_id, "x-request-id": f"req-{self.name}"}
        return Attempt(invocation, {k: v for k, v in ids.items() if v})

    @property
    def path(self) -> Path:
        return FRAMES_DIR / f"{self.name}.json"

    def exchanges(self) -> list[dict[str, Any]]:
        """The recorded exchanges: method, path, status, content type and body of each request."""
        recorded: list[dict[str, Any]] = json.loads(self.path.read_text())["exchanges"]
        return recorded


_LG = {"assistant_id": "chat"}
_A2A_03 = {"protocol_version": "0.3", "rpc_url": f"{ENDPOINT}/a2a/jsonrpc"}
SCENARIOS = {
    s.name: s
    for s in (
        Scenario("langgraph_wait_thread", "langgraph", "langgraph", "hello graph", options=_LG, session_id="s-lg"),
        Scenario("langgraph_wait_stateless", "langgraph", "langgraph", "hello", options={**_LG, "thread_from": "none"}),
        Scenario("langgraph_wait_boom", "langgraph", "langgraph", "go", agent="boom"),
        Scenario(
            "langgraph_stream_default", "langgraph", "langgraph", "hi there", True, options=_LG, session_id="s-lg2"
        ),
        Scenario(
            "langgraph_stream_messages",
            "langgraph",
            "langgraph",
            "hi there",
            True,
            options=_LG,
            params={"stream_mode": "messages"},
        ),
        Scenario(
            "langgraph_stream_boom",
            "langgraph",
            "langgraph",
            "go",
            True,
            agent="boom",
            params={"stream_mode": "values"},
        ),
        Scenario("langgraph_ghost", "langgraph", "langgraph", "go", options={"assistant_id": "no-such-graph"}),
        Scenario(
            "mastra_generate", "mastra", "mastra", "hello mastra", options={"agent_id": "echo"}, session_id="s-m1"
        ),
        Scenario(
            "mastra_generate_tool",
            "mastra",
            "mastra",
            "weather Oslo",
            options={"agent_id": "echo", "thread_from": "none"},
        ),
        Scenario(
            "mastra_stream_tool",
            "mastra",
            "mastra",
            "weather Paris",
            True,
            options={"agent_id": "echo", "thread_from": "none"},
        ),
        Scenario(
            "mastra_stream_fail",
            "mastra",
            "mastra",
            "fail again",
            True,
            options={"agent_id": "echo", "thread_from": "none"},
        ),
        Scenario("mastra_ghost", "mastra", "mastra", "anyone?", options={"agent_id": "no-such-agent"}),
        Scenario(
            "crewai_stream",
            "crewai",
            "crewai",
            "steady beavers",
            True,
            session_id="s-c2",
            options={"bearer_token": "crew-test-token", "poll_interval": 0.05, "text_input": "topic"},
        ),
        Scenario(
            "crewai_wrong_input",
            "crewai",
            "crewai",
            "otters",
            options={"bearer_token": "crew-test-token", "text_input": "subject"},
        ),
        Scenario("a2a_invoke", "a2a", "a2a", "hello agents", session_id="s-a1"),
        Scenario("a2a_stream_03", "a2a", "a2a", "stream me", True, options=_A2A_03),
        Scenario("a2a_stream_fail", "a2a", "a2a", "fail again", True),
    )
}
