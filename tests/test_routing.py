from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pytest

from gateway.config import load_config_text
from gateway.model import Invocation, Message, NotFound
from gateway.routing import Router

CONFIG = """
agents:
  a: {kind: http, endpoint: "http://127.0.0.1:1"}
  b: {kind: http, endpoint: "http://127.0.0.1:2"}
  c: {kind: http, endpoint: "http://127.0.0.1:3"}
routes:
  - name: canary-header
    match: {agent: assistant, headers: {X-Canary: "yes"}}
    target: c
  - name: assistant
    match: {agent: assistant}
    split: [{agent: a, weight: 3}, {agent: b, weight: 1}, {agent: c, weight: 0}]
  - match: {agent: a}
    target: b
"""


def router(choose: object = None) -> Router:
    config = load_config_text(CONFIG, "routes.yaml", {})
    return Router(config.routes, list(config.agents), choose)  # type: ignore[arg-type]


def call(agent: str, **headers: str) -> Invocation:
    return Invocation(agent, (Message.user("hi"),), headers=headers)


def test_header_match_wins_in_file_order() -> None:
    decision = router().route_for(call("assistant", **{"x-canary": "yes"}))
    assert (decision.agent, decision.route) == ("c", "canary-header")


def test_weighted_split_uses_weights_and_skips_zero() -> None:
    seen: list[tuple[list[str], list[int]]] = []

    def choose(names: Sequence[str], weights: Sequence[int]) -> str:
        seen.append((list(names), list(weights)))
        return names[-1]

    decision = router(choose).route_for(call("assistant", **{"x-canary": "no"}))
    assert (decision.agent, decision.route) == ("b", "assistant")
    assert seen == [(["a", "b"], [3, 1])]


def test_weighted_split_distribution() -> None:
    r = router()
    counts = Counter(r.route_for(call("assistant")).agent for _ in range(4000))
    assert set(counts) == {"a", "b"}
    assert 0.68 < counts["a"] / 4000 < 0.82


def test_route_can_shadow_an_agent_name_and_unnamed_routes_get_an_index() -> None:
    decision = router().route_for(call("a"))
    assert (decision.agent, decision.route) == ("b", "routes[2]")


def test_direct_agent_and_unknown_names() -> None:
    assert router().route_for(call("c")).route is None
    with pytest.raises(NotFound, match="no agent or route named 'zzz'"):
        router().route_for(call("zzz"))
