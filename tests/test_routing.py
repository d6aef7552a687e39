from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from gateway.config import load_config_text
from gateway.model import Caller, Invocation, Message, NotFound
from gateway.routing import Router, RouteRequest

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


MATCHING = """
agents:
  a: {kind: http, endpoint: "http://127.0.0.1:1"}
  b: {kind: http, endpoint: "http://127.0.0.1:2"}
  c: {kind: http, endpoint: "http://127.0.0.1:3"}
  d: {kind: http, endpoint: "http://127.0.0.1:4"}
routes:
  - name: admins
    match: {agent: assistant, claims: {groups: admins}}
    target: d
  - name: billing-identity
    match: {agent: assistant, identities: [billing-agent]}
    target: c
  - name: beta-clients
    match:
      agent: assistant
      headers:
        - {name: User-Agent, prefix: "beta-client/"}
        - {name: x-version, regex: "v[23]"}
        - {name: x-legacy, present: false}
    target: b
  - name: debug-query
    match: {agent: assistant, query: [{name: debug, exact: "1"}]}
    target: b
  - name: threads-proxy
    match: {agent: lg, methods: [POST], path_prefix: /threads}
    target: c
  - name: tenant-map-form
    match: {agent: assistant, headers: {X-Tenant: acme}}
    target: a
"""


def matching_router() -> Router:
    config = load_config_text(MATCHING, "routes.yaml", {})
    return Router(config.routes, list(config.agents))


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (RouteRequest("assistant", caller=Caller("u1", {"groups": ["staff", "admins"]})), ("d", "admins")),
        (RouteRequest("assistant", caller=Caller("u1", {"groups": "admins"})), ("d", "admins")),
        (RouteRequest("assistant", caller=Caller("billing-agent")), ("c", "billing-identity")),
        (RouteRequest("assistant", {"user-agent": "beta-client/2.1", "x-version": "v3"}), ("b", "beta-clients")),
        (RouteRequest("assistant", {"user-agent": "beta-client/2.1", "x-version": "v33"}), None),  # regex is whole
        (RouteRequest("assistant", {"user-agent": "beta-client/2", "x-version": "v2", "x-legacy": ""}), None),
        (RouteRequest("assistant", query={"debug": "1"}), ("b", "debug-query")),
        (RouteRequest("assistant", {"x-tenant": "acme"}), ("a", "tenant-map-form")),
        (RouteRequest("lg", method="POST", path="/threads/t1/runs"), ("c", "threads-proxy")),
        (RouteRequest("lg", method="GET", path="/threads/t1"), None),
        (RouteRequest("lg"), None),  # an invoke call never matches a passthrough-only route
    ],
)
def test_conditions_of_every_kind(request_: RouteRequest, expected: tuple[str, str] | None) -> None:
    router = matching_router()
    if expected is None:
        with pytest.raises(NotFound):
            router.decide(request_)
    else:
        decision = router.decide(request_)
        assert (decision.agent, decision.route) == expected


def test_explain_says_why_each_route_did_not_match() -> None:
    verdicts = matching_router().explain(RouteRequest("assistant", {"user-agent": "curl/8", "x-tenant": "acme"}))
    by_route = {v.route: v for v in verdicts}
    assert [v.route for v in verdicts if v.matched] == ["tenant-map-form"]
    assert by_route["admins"].reasons == ("claim groups is None, wanted one of ['admins']",)
    assert by_route["beta-clients"].reasons == (
        "header user-agent is 'curl/8', wanted starting with 'beta-client/'",
        "header x-version is absent, wanted matching /v[23]/",
    )
    assert by_route["threads-proxy"].reasons[0] == "the call is for agent 'assistant', not 'lg'"


def test_cli_routes_explain() -> None:
    import subprocess
    import sys

    from tests.helpers.paths import ROOT

    path = ROOT / "examples" / "gateway.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "routes", "explain", "-c", str(path), "--agent", "echo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("=> ")


def test_cli_routes_explain_names_the_failed_conditions(tmp_path: Path) -> None:
    import subprocess
    import sys

    config = tmp_path / "routes.yaml"
    config.write_text(MATCHING)
    args = ["routes", "explain", str(config), "--agent", "assistant", "--identity", "u1", "--claim", "groups=staff"]
    done = subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "admins: no: claim groups is 'staff', wanted one of ['admins']" in done.stdout
    assert "billing-identity: no: the caller is 'u1', not one of ['billing-agent']" in done.stdout
    assert done.stdout.strip().splitlines()[-1].startswith("=> no route and no agent")
    done = subprocess.run(
        [sys.executable, "-m", "gateway", *args, "--claim", "groups=admins"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert "admins: MATCHED" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "=> d (route admins)"


def test_bad_conditions_are_config_errors() -> None:
    from gateway.config import ConfigError

    bad = "agents: {a: {kind: http, endpoint: 'http://127.0.0.1:1'}}\nroutes:\n  - match: {agent: x, headers: [{name: h, exact: v, prefix: p}]}\n    target: a\n  - match: {agent: y, headers: [{name: h, regex: '('}]}\n    target: a\n"
    with pytest.raises(ConfigError) as info:
        load_config_text(bad, "r.yaml", {})
    text = str(info.value)
    assert "routes[0].match.headers[0]: give exactly one of exact, prefix, regex or present" in text
    assert "routes[1].match.headers[0]: invalid regular expression '('" in text
