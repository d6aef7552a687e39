"""Streaming: time to the first chunk and to the end of a 20-chunk stream
(each chunk after a fixed delay) through the gateway vs direct. A buffering
proxy would show a first-chunk time near the total; ours should match direct."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from bench.gateway_config import STREAM_CHUNKS, STREAM_DELAY_MS
from bench.harness import Bench, ScenarioResult, alternate
from bench.stats import merge_rounds, ratio

NAME = "streaming"
TITLE = f"Streaming: {STREAM_CHUNKS} chunks, {STREAM_DELAY_MS} ms apart (sequential streams, Python client)"


def run(bench: Bench) -> ScenarioResult:
    result = ScenarioResult(NAME, TITLE)
    up = bench.start_upstream()
    s = bench.settings
    reps = str(s.stream_reps)
    body = str(bench.body)
    with bench.gateway() as gw:
        for front in s.fronts:
            measures: list[tuple[str, Callable[[], dict[str, Any]]]]
            if front == "http":
                direct_url = f"http://127.0.0.1:{up.http_port}/stream/{STREAM_CHUNKS}/{STREAM_DELAY_MS}"
                measures = [
                    ("direct", partial(bench.pyclient, "stream", "--url", direct_url, "--body", body, "--reps", reps)),
                    (
                        "gateway",
                        partial(
                            bench.pyclient,
                            "stream",
                            "--url",
                            gw.url("/v1/agents/stream/stream"),
                            "--body",
                            body,
                            "--reps",
                            reps,
                        ),
                    ),
                ]
            else:
                remote = f"stream/{STREAM_CHUNKS}/{STREAM_DELAY_MS}"
                direct = f"127.0.0.1:{up.grpc_port}"
                measures = [
                    ("direct", partial(bench.pyclient, "stream", "--grpc", direct, "--agent", remote, "--reps", reps)),
                    (
                        "gateway",
                        partial(bench.pyclient, "stream", "--grpc", gw.grpc, "--agent", "stream-grpc", "--reps", reps),
                    ),
                ]
            rounds = alternate(s.rounds, measures)
            d, g = merge_rounds(rounds["direct"]), merge_rounds(rounds["gateway"])
            result.rows.append(
                {
                    "front": front,
                    "chunks_seen": int(min(d["chunks_min"], g["chunks_min"])),
                    "direct_ttfb_ms": d["ttfb_p50_ms"],
                    "gateway_ttfb_ms": g["ttfb_p50_ms"],
                    "ttfb_ratio": ratio(g["ttfb_p50_ms"], d["ttfb_p50_ms"]),
                    "direct_total_ms": d["total_p50_ms"],
                    "gateway_total_ms": g["total_p50_ms"],
                    "total_ratio": ratio(g["total_p50_ms"], d["total_p50_ms"]),
                    # Near 1/chunks when streamed through; near 1 when buffered.
                    "gateway_ttfb_share": ratio(g["ttfb_p50_ms"], g["total_p50_ms"]),
                }
            )
    result.notes.append("medians over sequential streams; ttfb = time to the first delta chunk")
    return result
