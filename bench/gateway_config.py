"""The gateway YAML a benchmark runs with: every bench agent, the fan-out
workflow, and optionally a ``policies`` block applied to chosen agents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# The branch latencies of the fan-out workflow (ms); the slowest bounds the ideal.
FANOUT_MS = (10, 20, 30, 40, 50, 60, 70, 80)
STREAM_CHUNKS, STREAM_DELAY_MS = 20, 10
# The two stream shapes of the per-event CPU scenario: a burst written back to
# back, and events spaced like tokens (each arrives alone).
BURST_EVENTS = 2000
SPACED_EVENTS, SPACED_MS = 500, 1
BURST_PATH, SPACED_PATH = f"/burst/{BURST_EVENTS}", f"/stream/{SPACED_EVENTS}/{SPACED_MS}"

# What a user's defaults put around a call (issue 19's goal 1): timeout, retry, breaker.
CHAIN_POLICIES: dict[str, Any] = {
    "chain": {
        "timeout": {"per_try": "2s", "overall": "5s"},
        "retry": {"max_attempts": 3, "backoff": {"base": "10ms", "max": "100ms"}},
        "circuit_breaker": {"consecutive_failures": 5, "reset_timeout": "10s"},
    }
}

# The full resilience chain, in the YAML shape the policies work defines.
FULL_POLICIES: dict[str, Any] = {
    "full": {
        "timeout": {"per_try": "2s", "overall": "5s"},
        "retry": {"max_attempts": 3, "backoff": {"base": "10ms", "max": "100ms"}},
        "circuit_breaker": {"consecutive_failures": 5, "reset_timeout": "10s"},
        "concurrency": {"max_in_flight": 1000},
        "fallback": {"targets": [{"static": {"text": "degraded"}}]},
    }
}


def gateway_config(
    http_port: int, grpc_port: int, policies: dict[str, Any] | None = None, policy_agents: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The config document; agents named in ``policy_agents`` get ``policies: [<all names>]``."""
    http = f"http://127.0.0.1:{http_port}"
    grpc = f"127.0.0.1:{grpc_port}"
    stream_path = f"/stream/{STREAM_CHUNKS}/{STREAM_DELAY_MS}"
    agents: dict[str, dict[str, Any]] = {
        "fast": {"kind": "http", "endpoint": http, "options": {"invoke_path": "/invoke"}},
        "fast-grpc": {"kind": "grpc", "endpoint": grpc, "options": {"remote_agent": "fast"}},
        "stream": {"kind": "http", "endpoint": http, "options": {"stream_path": stream_path}},
        "stream-grpc": {
            "kind": "grpc",
            "endpoint": grpc,
            "options": {"remote_agent": f"stream/{STREAM_CHUNKS}/{STREAM_DELAY_MS}"},
        },
        "hold": {"kind": "http", "endpoint": http, "options": {"stream_path": "/hold"}},
        "burst": {"kind": "http", "endpoint": http, "options": {"stream_path": BURST_PATH}},
        "spaced": {"kind": "http", "endpoint": http, "options": {"stream_path": SPACED_PATH}},
        "hold-grpc": {"kind": "grpc", "endpoint": grpc, "options": {"remote_agent": "hold"}},
    }
    for ms in FANOUT_MS:
        agents[f"sleep{ms}"] = {"kind": "http", "endpoint": http, "options": {"invoke_path": f"/sleep/{ms}"}}
    if policies:
        # A copy of `fast` with the whole chain, so both run in one gateway side by side.
        agents["fast-policies"] = {**agents["fast"], "policies": list(policies)}
        for name in policy_agents:
            agents[name] = {**agents[name], "policies": list(policies)}
    document: dict[str, Any] = {
        "listeners": {"http": {"address": "127.0.0.1:0"}, "grpc": {"address": "127.0.0.1:0"}},
        "agents": agents,
        "workflows": {
            "fanout": {
                "kind": "parallel",
                "aggregate": "all",
                "branches": [{"name": f"b{ms}", "agent": f"sleep{ms}"} for ms in FANOUT_MS],
            }
        },
        # Spans are still made (ids propagate); nothing is exported, as with no collector.
        "telemetry": {"tracing": {"export": False}},
        "server": {"drain_timeout": "1s", "config_watch": None},
        # Off the measured path: an ephemeral admin port, no state file in the working tree.
        "admin": {"address": "127.0.0.1:0"},
        "state": None,
    }
    if policies:
        document["policies"] = policies
    return document


def write_config(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path
