"""CPU per stream event, in the two shapes a proxy meets: a burst (events written
back to back, so reads coalesce) and events spaced like tokens (each arrives
alone and pays a wake-up, a read and a write). The proxy's own CPU time over
sequential streams, divided by the events the client received, for nginx, the
gateway's passthrough (``/v1/proxy/...``, bytes relayed) and its typed stream
(``/v1/agents/{agent}/stream``, events parsed and re-emitted); direct as the floor."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from typing import Any

from bench.gateway_config import BURST_EVENTS, BURST_PATH, SPACED_EVENTS, SPACED_MS, SPACED_PATH
from bench.harness import Bench, ScenarioResult, alternate, metered
from bench.nginx import nginx_beside
from bench.procs import TICKS_PER_SECOND, Child
from bench.stats import median, ratio

NAME = "stream_cpu"
TITLE = (
    f"CPU per stream event: bursts of {BURST_EVENTS} back to back, {SPACED_EVENTS} spaced {SPACED_MS} ms (HTTP, SSE)"
)
# shape -> (the upstream path, the typed agent streaming it)
SHAPES = {"burst": (BURST_PATH, "burst"), "spaced": (SPACED_PATH, "spaced")}


def run(bench: Bench) -> ScenarioResult:
    result = ScenarioResult(NAME, TITLE)
    s = bench.settings
    up = bench.start_upstream()
    reps = {"burst": str(s.burst_reps), "spaced": str(s.spaced_reps)}
    with ExitStack() as stack:
        nginx_child: list[Child] = []
        nginx = stack.enter_context(
            nginx_beside(up.http_port, up.grpc_port, bench.pins["proxy"], result.notes, started=nginx_child)
        )
        gw = stack.enter_context(bench.gateway("stream-cpu"))
        for shape, (path, agent) in SHAPES.items():
            targets: dict[str, tuple[str, Child | None]] = {"direct": (f"http://127.0.0.1:{up.http_port}{path}", None)}
            if nginx is not None:
                targets["nginx"] = (f"http://127.0.0.1:{nginx[0]}{path}", nginx_child[0])
            targets["passthrough"] = (gw.url(f"/v1/proxy/fast{path}"), gw.child)
            targets["typed"] = (gw.url(f"/v1/agents/{agent}/stream"), gw.child)
            measures: list[tuple[str, Callable[[], dict[str, Any]]]] = []
            for name, (url, proxy) in targets.items():
                load = partial(bench.pyclient, "stream", "--url", url, "--body", str(bench.body), "--reps", reps[shape])
                measures.append((name, metered(load, proxy, up.child, unit="chunks_all")))
            result.rows += _rows(shape, alternate(s.cpu_rounds, measures))
    result.notes.append(
        f"{s.cpu_rounds} rounds alternating, {s.burst_reps} bursts / {s.spaced_reps} spaced streams each (+1 warm-up, "
        "counted: the proxy served it); cpu_us: the proxy's CPU per event received, median (min-max) over rounds, "
        f"from /proc/<pid>/stat in {1000 / TICKS_PER_SECOND:g} ms ticks"
    )
    result.notes.append("ttfb_vs_direct: first event's arrival through the proxy over direct (medians)")
    return result


def _rows(shape: str, rounds: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    def med(name: str, key: str) -> float | None:
        values = [r[key] for r in rounds.get(name, []) if r.get(key) is not None]
        return median(values) if values else None

    passthrough, nginx, direct_ttfb = med("passthrough", "cpu_us"), med("nginx", "cpu_us"), med("direct", "ttfb_p50_ms")
    rows = []
    for name, runs in rounds.items():
        cpu, ttfb = med(name, "cpu_us"), med(name, "ttfb_p50_ms")
        spread = [r["cpu_us"] for r in runs if r.get("cpu_us") is not None]
        rows.append(
            {
                "shape": shape,
                "target": name,
                "events": int(min(r["chunks_min"] for r in runs)),
                "cpu_us": cpu,
                "cpu_us_range": f"{min(spread):.1f}-{max(spread):.1f}" if spread else None,
                "upstream_us": med(name, "upstream_cpu_us"),
                "cpu_vs_passthrough": ratio(cpu, passthrough) if cpu is not None and passthrough else None,
                "cpu_vs_nginx": ratio(cpu, nginx) if cpu is not None and nginx else None,
                "ttfb_ms": ttfb,
                "ttfb_vs_direct": ratio(ttfb, direct_ttfb) if ttfb is not None and direct_ttfb else None,
                "total_ms": med(name, "total_p50_ms"),
            }
        )
    return rows
