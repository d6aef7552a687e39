"""Scale: the gateway's resident memory idle and with N concurrent open streams
(a separate client process opens them; the upstream sends one event and holds)."""

from __future__ import annotations

import json
import resource
import time
from typing import Any

from bench.harness import Bench, ScenarioResult, check_http
from bench.procs import Child, python

NAME = "scale"
TITLE = "Scale: gateway RSS with N concurrent open streams (HTTP front, SSE)"
# Sockets per proxied stream inside the gateway: the client's, plus the
# upstream's for HTTP/1.1 (a gRPC upstream multiplexes all on one connection).
SOCKETS_PER_STREAM = {"http": 2, "grpc": 1}
FD_MARGIN = 200


def _open(bench: Bench, gateway_child: Child, url: str, streams: int) -> dict[str, Any]:
    client = Child(
        "hold-client",
        python(
            "bench.pyclient",
            "hold",
            "--url",
            url,
            "--body",
            str(bench.body),
            "--streams",
            str(streams),
            "--timeout",
            "120",
        ),
        bench.pins["client"],
        stdin=True,
    )
    try:
        opened = json.loads(client.wait_for(r'^\{"event": "open".*', timeout=150).group(0))
        time.sleep(0.5)  # let the last writes settle before reading RSS
        rss = gateway_child.rss_kb()
        client.send("close")
        client.communicate(60)
    finally:
        client.stop()
    return {**opened, "rss_kb": rss}


def run(bench: Bench) -> ScenarioResult:
    result = ScenarioResult(NAME, TITLE)
    bench.start_upstream()
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    result.notes.append(f"RLIMIT_NOFILE hard limit {nofile} (each process raises its soft limit to it)")
    for upstream in ("grpc", "http"):
        agent = "hold-grpc" if upstream == "grpc" else "hold"
        for streams in bench.settings.scale_streams:
            row: dict[str, Any] = {"upstream": upstream, "streams": streams}
            needed = streams * SOCKETS_PER_STREAM[upstream] + FD_MARGIN
            if needed > nofile:
                row["skipped"] = f"needs ~{needed} descriptors in the gateway, limit is {nofile}"
                result.rows.append(row)
                continue
            # A fresh gateway per row, so idle and loaded RSS are of the same process history.
            with bench.gateway(f"scale-{upstream}-{streams}") as gw:
                check_http(gw.url("/v1/agents/fast/invoke"), bench.body)
                idle = gw.child.rss_kb()
                loaded = _open(bench, gw.child, gw.url(f"/v1/agents/{agent}/stream"), streams)
            opened = loaded["opened"]
            row.update(
                {
                    "opened": opened,
                    "failed": loaded["failed"],
                    "open_s": loaded["open_s"],
                    "idle_rss_mb": idle / 1024,
                    "loaded_rss_mb": loaded["rss_kb"] / 1024,
                    "kb_per_stream": (loaded["rss_kb"] - idle) / opened if opened else None,
                }
            )
            result.rows.append(row)
    return result
