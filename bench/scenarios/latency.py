"""Added latency per hop: p50/p99 through the gateway minus direct, per front,
at concurrency 1 and at a moderate fixed concurrency."""

from __future__ import annotations

from functools import partial

from bench.harness import Bench, ScenarioResult, alternate
from bench.stats import merge_rounds, ratio

NAME = "latency"
TITLE = "Added latency per hop (~1 KB JSON request, fast upstream)"


def run(bench: Bench) -> ScenarioResult:
    result = ScenarioResult(NAME, TITLE)
    up = bench.start_upstream()
    s = bench.settings
    with bench.gateway() as gw:
        for front in s.fronts:
            for concurrency in s.concurrency:
                if front == "http":
                    tool = bench.http_tool()
                    direct_url = f"http://127.0.0.1:{up.http_port}/invoke"
                    gateway_url = gw.url("/v1/agents/fast/invoke")
                    measures = [
                        ("direct", partial(bench.http_load, direct_url, concurrency, s.latency_seconds)),
                        ("gateway", partial(bench.http_load, gateway_url, concurrency, s.latency_seconds)),
                    ]
                else:
                    tool = bench.grpc_tool()
                    direct = f"127.0.0.1:{up.grpc_port}"
                    measures = [
                        ("direct", partial(bench.grpc_load, direct, "fast", concurrency, s.latency_seconds)),
                        ("gateway", partial(bench.grpc_load, gw.grpc, "fast-grpc", concurrency, s.latency_seconds)),
                    ]
                rounds = alternate(s.rounds, measures)
                d, g = merge_rounds(rounds["direct"]), merge_rounds(rounds["gateway"])
                result.rows.append(
                    {
                        "front": front,
                        "concurrency": concurrency,
                        "client": tool,
                        "direct_p50_ms": d["p50_ms"],
                        "gateway_p50_ms": g["p50_ms"],
                        "added_p50_ms": g["p50_ms"] - d["p50_ms"],
                        "direct_p99_ms": d["p99_ms"],
                        "gateway_p99_ms": g["p99_ms"],
                        "added_p99_ms": g["p99_ms"] - d["p99_ms"],
                        "p50_ratio": ratio(g["p50_ms"], d["p50_ms"]),
                        "requests": int(d["requests"] + g["requests"]),
                        "errors": int(d["errors"] + g["errors"]),
                    }
                )
    return result
