"""Throughput with the proxy on one core: rps through the gateway as a ratio to
the upstream called directly and to nginx proxying the same upstream."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from bench.harness import Bench, ScenarioResult, alternate
from bench.nginx import nginx_beside
from bench.stats import merge_rounds, ratio

NAME = "throughput"
TITLE = "Throughput, proxy pinned to one core"
CONCURRENCY = 32


def run(bench: Bench) -> ScenarioResult:
    result = ScenarioResult(NAME, TITLE)
    up = bench.start_upstream()
    s = bench.settings
    peer = nginx_beside(up.http_port, up.grpc_port, bench.pins["proxy"], result.notes)
    with peer as nginx, bench.gateway() as gw:
        for front in s.fronts:
            measures: list[tuple[str, Callable[[], dict[str, Any]]]]
            if front == "http":
                tool = bench.http_tool()

                def http(url: str) -> Callable[[], dict[str, Any]]:
                    return partial(bench.http_load, url, CONCURRENCY, s.throughput_seconds)

                measures = [
                    ("direct", http(f"http://127.0.0.1:{up.http_port}/invoke")),
                    ("gateway", http(gw.url("/v1/agents/fast/invoke"))),
                ]
                if nginx is not None:
                    measures.append(("nginx", http(f"http://127.0.0.1:{nginx[0]}/invoke")))
            else:
                tool = bench.grpc_tool()

                def rpc(address: str, agent: str) -> Callable[[], dict[str, Any]]:
                    return partial(bench.grpc_load, address, agent, CONCURRENCY, s.throughput_seconds)

                measures = [
                    ("direct", rpc(f"127.0.0.1:{up.grpc_port}", "fast")),
                    ("gateway", rpc(gw.grpc, "fast-grpc")),
                ]
                if nginx is not None:
                    measures.append(("nginx", rpc(f"127.0.0.1:{nginx[1]}", "fast")))
            rounds = alternate(s.rounds, measures)
            rps = {name: merge_rounds(r)["rps"] for name, r in rounds.items()}
            errors = sum(int(merge_rounds(r)["errors"]) for r in rounds.values())
            result.rows.append(
                {
                    "front": front,
                    "concurrency": CONCURRENCY,
                    "client": tool,
                    "direct_rps": rps["direct"],
                    "gateway_rps": rps["gateway"],
                    "nginx_rps": rps.get("nginx"),
                    "gateway_vs_direct": ratio(rps["gateway"], rps["direct"]),
                    "gateway_vs_nginx": ratio(rps["gateway"], rps["nginx"]) if "nginx" in rps else None,
                    "nginx_vs_direct": ratio(rps["nginx"], rps["direct"]) if "nginx" in rps else None,
                    "errors": errors,
                }
            )
    return result
