"""What every scenario shares: the settings of the run, the processes it
started, the request body, and the way a scenario reports rows or a skip."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from agentgateway.v1 import gateway_pb2_grpc as pb_grpc
from bench import loadgen
from bench.gateway_config import gateway_config, write_config
from bench.payload import grpc_frame, request_json, request_pb
from bench.procs import Child, pin_plan, python, start_agents, start_gateway, start_reference


class Skip(Exception):
    """A scenario (or one row) that cannot run here, with the reason shown in the table."""


@dataclass
class Settings:
    quick: bool = False
    fronts: tuple[str, ...] = ("http", "grpc")
    client: str = "auto"  # auto: wrk/h2load when installed; python: always the Python client
    concurrency: tuple[int, ...] = (1, 32)
    rounds: int = 2
    cpu_rounds: int = 3  # the CPU-per-call and per-event scenarios, alternating
    latency_seconds: float = 3.0
    throughput_seconds: float = 4.0
    requests: int = 1_000_000  # cap per Python-client run (the smoke test uses a few)
    stream_reps: int = 10
    # Streams per round in the per-event CPU scenario: enough events that 10 ms CPU ticks resolve nginx.
    burst_reps: int = 20
    spaced_reps: int = 4
    fanout_reps: int = 20
    scale_streams: tuple[int, ...] = (1000, 10000)
    warmup_seconds: float = 1.0  # h2load's warm-up before each timed run

    @classmethod
    def quick_mode(cls) -> Settings:
        return cls(
            quick=True,
            rounds=1,
            cpu_rounds=1,
            latency_seconds=1.0,
            throughput_seconds=1.0,
            stream_reps=2,
            burst_reps=2,
            spaced_reps=1,
            fanout_reps=5,
            scale_streams=(200,),
            warmup_seconds=0.0,
        )


@dataclass
class ScenarioResult:
    name: str
    title: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None


@dataclass
class Upstream:
    child: Child
    http_port: int
    grpc_port: int


@dataclass
class RunningGateway:
    child: Child
    http: str
    grpc: str

    def url(self, path: str) -> str:
        return f"http://{self.http}{path}"


class Bench:
    """One benchmark run: settings, CPU pinning, a temp dir, the upstream agents."""

    def __init__(self, settings: Settings, workdir: Path) -> None:
        self.settings = settings
        self.workdir = workdir
        self.pins = pin_plan()
        self.body = workdir / "request.json"
        self.body.write_bytes(request_json())
        self.notes: list[str] = []
        self.upstream: Upstream | None = None

    def start_upstream(self) -> Upstream:
        if self.upstream is None:
            child, http_port, grpc_port = start_agents(self.pins["upstream"], hold_max=300.0)
            self.upstream = Upstream(child, http_port, grpc_port)
        return self.upstream

    def close(self) -> None:
        if self.upstream is not None:
            self.upstream.child.stop()
            self.upstream = None

    @contextmanager
    def gateway(
        self,
        name: str = "gateway",
        document: dict[str, Any] | None = None,
        workers: int = 1,
        cpus: Sequence[int] | None = None,
    ) -> Iterator[RunningGateway]:
        """A gateway process on the proxy core (or ``cpus``) with the bench config (or ``document``)."""
        up = self.start_upstream()
        config = write_config(self.workdir / f"{name}.yaml", document or gateway_config(up.http_port, up.grpc_port))
        child, http, grpc_address = start_gateway(config, self.pins["proxy"] if cpus is None else cpus, workers)
        try:
            yield RunningGateway(child, http, grpc_address)
        finally:
            child.stop()

    @contextmanager
    def reference(self, name: str, upstream_port: int) -> Iterator[tuple[Child, int]]:
        """One of bench/references' proxies on the proxy core: the process and its port."""
        child, port = start_reference(name, upstream_port, self.pins["proxy"])
        try:
            yield child, port
        finally:
            child.stop()

    # --- load -------------------------------------------------------------

    def http_tool(self) -> str:
        return "wrk" if self.settings.client == "auto" and loadgen.available("wrk") else "python"

    def grpc_tool(self) -> str:
        return "h2load" if self.settings.client == "auto" and loadgen.available("h2load") else "python"

    def http_load(self, url: str, concurrency: int, seconds: float) -> dict[str, Any]:
        check_http(url, self.body)
        if self.http_tool() == "wrk":
            return loadgen.wrk(url, self.body, concurrency, seconds, self.pins["client"])
        return self.pyclient(
            "latency", "--url", url, "--body", str(self.body), *self._python_load_args(concurrency, seconds)
        )

    def grpc_load(
        self, address: str, agent: str, concurrency: int, seconds: float, warmup: float | None = None
    ) -> dict[str, Any]:
        """Unary gRPC load; ``warmup``: h2load's warm-up period (default: the settings')."""
        check_grpc(address, agent)
        if self.grpc_tool() == "h2load":
            url = f"http://{address}/agentgateway.v1.AgentGatewayService/Invoke"
            frame = grpc_frame(request_pb(agent))
            warm = self.settings.warmup_seconds if warmup is None else warmup
            return loadgen.h2load(url, frame, concurrency, seconds, self.pins["client"], warmup=warm)
        return self.pyclient(
            "latency", "--grpc", address, "--agent", agent, *self._python_load_args(concurrency, seconds)
        )

    def _python_load_args(self, concurrency: int, seconds: float) -> list[str]:
        warmup = "5" if self.settings.quick else "50"
        return [
            "--concurrency",
            str(concurrency),
            "--duration",
            str(seconds),
            "--requests",
            str(self.settings.requests),
            "--warmup",
            warmup,
        ]

    def pyclient(self, *args: str, timeout: float = 300.0) -> dict[str, Any]:
        """Run the Python client process on the client core; its JSON result."""
        child = Child("pyclient", python("bench.pyclient", *args), self.pins["client"])
        out, err = child.communicate(timeout)
        if child.proc.returncode != 0:
            raise RuntimeError(f"pyclient {args[0]} failed: {err[-800:]}")
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return result


def alternate(
    rounds: int, measures: Sequence[tuple[str, Callable[[], dict[str, Any]]]]
) -> dict[str, list[dict[str, Any]]]:
    """Run each measure once per round, interleaved (A B C A B C ...), so drift
    in the machine hits every target alike; results per target, per round."""
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in measures}
    for _ in range(rounds):
        for name, measure in measures:
            results[name].append(measure())
    return results


def metered(
    load: Callable[[], dict[str, Any]], proxy: Child | None, upstream: Child, unit: str = "ok"
) -> Callable[[], dict[str, Any]]:
    """``load`` with the CPU the proxy (and the upstream) spent during it, from their
    own accounting, per completed unit (``unit``: the result's count of calls or
    events; a Python client's warm-up calls count too, as the processes served them)."""

    def run() -> dict[str, Any]:
        proxy_before = proxy.cpu_seconds() if proxy is not None else 0.0
        upstream_before = upstream.cpu_seconds()
        result = load()
        proxy_s = proxy.cpu_seconds() - proxy_before if proxy is not None else None
        upstream_s = upstream.cpu_seconds() - upstream_before
        done = result[unit] + result.get("warmup", 0)
        return {
            **result,
            "cpu_us": proxy_s * 1e6 / done if proxy_s is not None and done else None,
            "upstream_cpu_us": upstream_s * 1e6 / done if done else None,
        }

    return run


def check_http(url: str, body: Path) -> None:
    """One request must succeed with a JSON answer, so errors never count as speed."""
    request = urllib.request.Request(url, data=body.read_bytes(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
    if not answer.get("messages"):
        raise RuntimeError(f"{url} answered without messages: {str(answer)[:200]}")


def check_grpc(address: str, agent: str) -> None:
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.AgentGatewayServiceStub(channel)  # type: ignore[no-untyped-call]
        answer = stub.Invoke(request_pb(agent), timeout=10)
    if not answer.messages:
        raise RuntimeError(f"gRPC {address} agent {agent} answered without messages")


def tool_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for tool, flag in (("wrk", "-v"), ("h2load", "--version"), ("nginx", "-v")):
        if shutil.which(tool) or (tool == "nginx" and Path("/usr/sbin/nginx").exists()):
            binary = shutil.which(tool) or "/usr/sbin/nginx"
            out = subprocess.run([binary, flag], capture_output=True, text=True, timeout=10)
            versions[tool] = (out.stdout + out.stderr).strip().splitlines()[0]
    return versions
