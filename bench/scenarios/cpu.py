"""CPU per call: the proxy process's own CPU time (utime + stime from
/proc/<pid>/stat, nginx's worker included) over a run at concurrency 32, divided
by the calls it completed, for every proxy beside the others on the same core:
nginx, the project's reference proxies (bench/references), the gateway's typed
invoke (plain, and with a timeout/retry/breaker chain), its passthrough; direct
calls as the floor (the upstream's own CPU, which every row also reports)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from typing import Any

from bench.gateway_config import CHAIN_POLICIES, gateway_config
from bench.harness import Bench, ScenarioResult, alternate, metered
from bench.nginx import nginx_beside
from bench.procs import Child
from bench.stats import median, ratio

NAME = "cpu"
TITLE = "CPU per call in the proxy process (its own utime+stime / completed calls), concurrency 32"
CONCURRENCY = 32
# The rows the ratios are taken against, per front.
BARE = {"http": "bare-python", "grpc": "grpc.aio-proxy"}

Measure = tuple[str, Callable[[], dict[str, Any]]]


def _targets(bench: Bench, stack: ExitStack, result: ScenarioResult) -> dict[str, tuple[str, Child | None]]:
    """Every target, started on ``stack``: "front:name" -> (HTTP URL or gRPC address,
    the proxy process, or None for direct calls)."""
    up = bench.start_upstream()
    nginx_child: list[Child] = []
    nginx = stack.enter_context(
        nginx_beside(up.http_port, up.grpc_port, bench.pins["proxy"], result.notes, started=nginx_child)
    )
    gw = stack.enter_context(bench.gateway("cpu", gateway_config(up.http_port, up.grpc_port, CHAIN_POLICIES)))
    http: dict[str, tuple[str, Child | None]] = {"direct": (f"http://127.0.0.1:{up.http_port}/invoke", None)}
    grpc: dict[str, tuple[str, Child | None]] = {"direct": (f"127.0.0.1:{up.grpc_port}", None)}
    if nginx is not None:
        http["nginx"] = (f"http://127.0.0.1:{nginx[0]}/invoke", nginx_child[0])
        grpc["nginx"] = (f"127.0.0.1:{nginx[1]}", nginx_child[0])
    if "http" in bench.settings.fronts:
        bare, bare_port = stack.enter_context(bench.reference("bare_http", up.http_port))
        aio, aio_port = stack.enter_context(bench.reference("aiohttp_proxy", up.http_port))
        http["bare-python"] = (f"http://127.0.0.1:{bare_port}/invoke", bare)
        http["aiohttp-proxy"] = (f"http://127.0.0.1:{aio_port}/invoke", aio)
    http["gateway-invoke"] = (gw.url("/v1/agents/fast/invoke"), gw.child)
    http["gateway-invoke-chain"] = (gw.url("/v1/agents/fast-policies/invoke"), gw.child)
    http["gateway-passthrough"] = (gw.url("/v1/proxy/fast/invoke"), gw.child)
    if "http" in bench.settings.fronts:
        # The same gateway on aiohttp's server (`server.http_server: aiohttp`): what the native one
        # saves on invoke, and what handing the passthrough to aiohttp behind it costs.
        document = gateway_config(up.http_port, up.grpc_port, CHAIN_POLICIES)
        document["server"]["http_server"] = "aiohttp"
        aio_gw = stack.enter_context(bench.gateway("cpu-aiohttp-server", document))
        http["gateway-invoke-chain-aiohttp-server"] = (aio_gw.url("/v1/agents/fast-policies/invoke"), aio_gw.child)
        http["gateway-passthrough-aiohttp-server"] = (aio_gw.url("/v1/proxy/fast/invoke"), aio_gw.child)
    if "grpc" in bench.settings.fronts:
        grpc_ref, grpc_port = stack.enter_context(bench.reference("grpc_proxy", up.grpc_port))
        grpc["grpc.aio-proxy"] = (f"127.0.0.1:{grpc_port}", grpc_ref)
        threaded, threaded_port = stack.enter_context(bench.reference("grpc_threaded_proxy", up.grpc_port))
        grpc["grpc-threaded-proxy"] = (f"127.0.0.1:{threaded_port}", threaded)
    grpc["gateway"] = (gw.grpc, gw.child)
    return {f"http:{k}": v for k, v in http.items()} | {f"grpc:{k}": v for k, v in grpc.items()}


def run(bench: Bench) -> ScenarioResult:
    result = ScenarioResult(NAME, TITLE)
    s = bench.settings
    up = bench.start_upstream()
    with ExitStack() as stack:
        targets = _targets(bench, stack, result)
        for front in s.fronts:
            measures: list[Measure] = []
            for key, (where, proxy) in targets.items():
                kind, name = key.split(":", 1)
                if kind != front:
                    continue
                if front == "http":
                    load = partial(bench.http_load, where, CONCURRENCY, s.throughput_seconds)
                else:
                    # No warm-up period: every call h2load makes is logged, so the CPU divides by all of them.
                    agent = "fast-grpc" if name == "gateway" else "fast"
                    load = partial(bench.grpc_load, where, agent, CONCURRENCY, s.throughput_seconds, warmup=0.0)
                measures.append((name, metered(load, proxy, up.child)))
            rounds = alternate(s.cpu_rounds, measures)
            rows = _rows(front, bench.http_tool() if front == "http" else bench.grpc_tool(), rounds)
            result.notes += _unserved(rows)
            result.rows += rows
    result.notes.append(
        f"{s.cpu_rounds} rounds alternating; cpu_us: median (min-max) over rounds of the proxy's CPU per call; "
        "upstream_us: the upstream's, the same work for every row"
    )
    result.notes.append(
        "gateway-invoke-chain: the typed invoke with timeout, retry and circuit breaker (bench/gateway_config.py)"
    )
    result.notes.append(
        "*-aiohttp-server: a second gateway with server.http_server: aiohttp (the native server is the default)"
    )
    result.notes.append(
        "grpc-threaded-proxy: the same raw-bytes forwarder on grpcio's threaded server, beside grpc.aio's"
    )
    return result


def _unserved(rows: list[dict[str, Any]]) -> list[str]:
    """Rows whose upstream did far less work per call than under direct calls: h2load
    counts a gRPC error (HTTP 200, grpc-status in the trailers) as a success, so a proxy
    failing fast would otherwise look fast. Every proxied call costs the upstream the same."""
    direct = next((r["upstream_us"] for r in rows if r["target"] == "direct"), None)
    if not direct:
        return []
    return [
        f"SUSPECT {r['front']} {r['target']}: its upstream spent {r['upstream_us']:.0f} us per call against "
        f"{direct:.0f} for direct calls; the calls may have failed without an HTTP error"
        for r in rows
        if r["target"] != "direct" and r["upstream_us"] is not None and r["upstream_us"] < direct / 2
    ]


def _rows(front: str, tool: str, rounds: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    def med(name: str, key: str) -> float | None:
        values = [r[key] for r in rounds.get(name, []) if r.get(key) is not None]
        return median(values) if values else None

    bare_cpu, nginx_cpu, nginx_rps = med(BARE[front], "cpu_us"), med("nginx", "cpu_us"), med("nginx", "rps")
    rows = []
    for name, runs in rounds.items():
        cpu = med(name, "cpu_us")
        spread = [r["cpu_us"] for r in runs if r.get("cpu_us") is not None]
        rps = med(name, "rps") or 0.0
        rows.append(
            {
                "front": front,
                "target": name,
                "client": tool,
                "rps": rps,
                "cpu_us": cpu,
                "cpu_us_range": f"{min(spread):.0f}-{max(spread):.0f}" if spread else None,
                "upstream_us": med(name, "upstream_cpu_us"),
                "cpu_vs_bare": ratio(cpu, bare_cpu) if cpu is not None and bare_cpu else None,
                "cpu_vs_nginx": ratio(cpu, nginx_cpu) if cpu is not None and nginx_cpu else None,
                "rps_vs_nginx": ratio(rps, nginx_rps) if nginx_rps else None,
                "p50_ms": med(name, "p50_ms"),
                "errors": int(sum(r["errors"] for r in runs)),
            }
        )
    return rows
