"""The external load generators: wrk (HTTP/1.1) and h2load (HTTP/2, for gRPC).

Both are C programs that outrun a Python server on one core, so the number
measured is the server's. Each run is bounded by its duration; wrk reports
latency percentiles through a Lua ``done`` hook, h2load through its per-request
log file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.stats import percentile

WRK_SCRIPT = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "errors": %d, "non2xx": %d, '
    .. '"p50_us": %d, "p99_us": %d, "mean_us": %.1f}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


def available(tool: str) -> bool:
    return shutil.which(tool) is not None


def _taskset(cpus: Sequence[int]) -> list[str]:
    return ["taskset", "-c", ",".join(map(str, cpus))] if available("taskset") else []


def wrk(url: str, body: Path, concurrency: int, duration: float, cpus: Sequence[int]) -> dict[str, Any]:
    """POST ``body`` to ``url`` for ``duration`` seconds over ``concurrency`` connections."""
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script = Path(tmp, "post.lua")
        script.write_text(WRK_SCRIPT)
        argv = [
            *_taskset(cpus),
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            "5s",
            "-s",
            str(script),
            url,
        ]
        out = subprocess.run(
            argv, env={**os.environ, "BENCH_BODY": str(body)}, capture_output=True, text=True, timeout=duration + 30
        )
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr[-500:] or out.stdout[-500:]}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    seconds = raw["duration_us"] / 1e6
    ok = raw["requests"] - raw["non2xx"]
    return {
        "requests": raw["requests"],
        "ok": ok,
        "errors": raw["errors"] + raw["non2xx"],
        "rps": ok / seconds if seconds else 0.0,
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "mean_ms": raw["mean_us"] / 1000,
    }


def h2load(
    url: str,
    frame: bytes,
    concurrency: int,
    duration: float,
    cpus: Sequence[int],
    streams_per_client: int = 1,
    warmup: float = 1.0,
) -> dict[str, Any]:
    """Unary gRPC calls as raw HTTP/2 POSTs of one framed message.

    h2load sees HTTP statuses only, not ``grpc-status`` trailers: callers check
    one call with a real gRPC client first, so errors cannot pass as speed.
    """
    with tempfile.TemporaryDirectory(prefix="bench-h2load-") as tmp:
        data, log = Path(tmp, "body.bin"), Path(tmp, "requests.tsv")
        data.write_bytes(frame)
        argv = [
            *_taskset(cpus),
            "h2load",
            "-c",
            str(concurrency),
            "-m",
            str(streams_per_client),
            "-D",
            str(max(1, round(duration))),
            *([f"--warm-up-time={warmup:g}"] if warmup > 0 else []),
            "-d",
            str(data),
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            f"--log-file={log}",
            url,
        ]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30)
        if out.returncode != 0:
            raise RuntimeError(f"h2load failed ({out.returncode}): {out.stderr[-500:] or out.stdout[-500:]}")
        rows = [line.split("\t") for line in log.read_text().splitlines() if line.strip()]
    ok = [int(r[2]) / 1000 for r in rows if r[1] == "200"]
    starts = [int(r[0]) for r in rows]
    span_s = (max(starts) - min(starts)) / 1e6 if len(starts) > 1 else 0.0
    return {
        "requests": len(rows),
        "ok": len(ok),
        "errors": len(rows) - len(ok),
        "rps": len(ok) / span_s if span_s else 0.0,
        "p50_ms": percentile(ok, 50),
        "p99_ms": percentile(ok, 99),
        "mean_ms": sum(ok) / len(ok) if ok else 0.0,
    }
