"""Added latency per hop: p50/p99 through the gateway minus direct, per front, at
concurrency 1 and at a moderate fixed concurrency, beside nginx proxying the same
upstream (the cost of any hop on this machine, as a yardstick) and, on HTTP, the
bare Python proxy (bench/references/bare_http.py: what a Python hop can cost)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from typing import Any

from bench.harness import Bench, ScenarioResult, alternate
from bench.nginx import nginx_beside
from bench.stats import merge_rounds, ratio

NAME = "latency"
TITLE = "Added latency per hop (~1 KB JSON request, fast upstream), beside nginx"


def run(bench: Bench) -> ScenarioResult:
    result = ScenarioResult(NAME, TITLE)
    up = bench.start_upstream()
    s = bench.settings
    peer = nginx_beside(up.http_port, up.grpc_port, bench.pins["proxy"], result.notes, wanted=not s.quick)
    with ExitStack() as stack, peer as nginx, bench.gateway() as gw:
        bare = stack.enter_context(bench.reference("bare_http", up.http_port)) if "http" in s.fronts else None
        for front in s.fronts:
            for concurrency in s.concurrency:
                measures: list[tuple[str, Callable[[], dict[str, Any]]]]
                if front == "http":
                    tool = bench.http_tool()
                    load = partial(bench.http_load, concurrency=concurrency, seconds=s.latency_seconds)
                    measures = [
                        ("direct", partial(load, f"http://127.0.0.1:{up.http_port}/invoke")),
                        ("gateway", partial(load, gw.url("/v1/agents/fast/invoke"))),
                    ]
                    if nginx is not None:
                        measures.append(("nginx", partial(load, f"http://127.0.0.1:{nginx[0]}/invoke")))
                    if bare is not None:
                        measures.append(("bare", partial(load, f"http://127.0.0.1:{bare[1]}/invoke")))
                else:
                    tool = bench.grpc_tool()
                    rpc = partial(bench.grpc_load, concurrency=concurrency, seconds=s.latency_seconds)
                    measures = [
                        ("direct", partial(rpc, f"127.0.0.1:{up.grpc_port}", "fast")),
                        ("gateway", partial(rpc, gw.grpc, "fast-grpc")),
                    ]
                    if nginx is not None:
                        measures.append(("nginx", partial(rpc, f"127.0.0.1:{nginx[1]}", "fast")))
                rounds = alternate(s.rounds, measures)
                d, g = merge_rounds(rounds["direct"]), merge_rounds(rounds["gateway"])
                n = merge_rounds(rounds["nginx"]) if "nginx" in rounds else None
                b = merge_rounds(rounds["bare"]) if "bare" in rounds else None
                nginx_added = n["p50_ms"] - d["p50_ms"] if n is not None else None
                result.rows.append(
                    {
                        "front": front,
                        "concurrency": concurrency,
                        "client": tool,
                        "direct_p50_ms": d["p50_ms"],
                        "gateway_p50_ms": g["p50_ms"],
                        "added_p50_ms": g["p50_ms"] - d["p50_ms"],
                        "nginx_added_p50_ms": nginx_added,
                        "added_vs_nginx": ratio(g["p50_ms"] - d["p50_ms"], nginx_added) if nginx_added else None,
                        "bare_added_p50_ms": b["p50_ms"] - d["p50_ms"] if b is not None else None,
                        "direct_p99_ms": d["p99_ms"],
                        "gateway_p99_ms": g["p99_ms"],
                        "added_p99_ms": g["p99_ms"] - d["p99_ms"],
                        "p50_ratio": ratio(g["p50_ms"], d["p50_ms"]),
                        "requests": int(sum(m["requests"] for m in (d, g, n, b) if m is not None)),
                        "errors": int(sum(m["errors"] for m in (d, g, n, b) if m is not None)),
                    }
                )
    return result
