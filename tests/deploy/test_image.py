"""The container image, built from deploy/Dockerfile once per run and run the way a user and the
kubelet run it.

The build goes through scripts/build_image.py (podman, a debootstrapped Debian base in place of
the pinned python image, which cannot be pulled here). Containers share the host's network
(this kernel refuses podman's bridges), so every listener is moved to a free loopback port; the
one run that keeps the image's baked config on its fixed ports gets a network namespace of its
own (--network=none) and is probed from inside, as its HEALTHCHECK is.

Without podman, debootstrap and runc, or as non-root, every test here skips with the reason;
under CI=true it fails instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from aiohttp import web
from grpc_health.v1 import health_pb2, health_pb2_grpc
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from agentgateway.v1 import gateway_pb2 as pb
from agentgateway.v1 import gateway_pb2_grpc as pb_grpc
from examples import echo_agent
from gateway import __version__
from scripts import build_image
from tests.conftest import start_app
from tests.frameworks.otlp import KIND_SERVER, OtlpReceiver

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SIDECAR = DEPLOY / "kubernetes" / "sidecar.yaml"
REDIS_URL = os.environ.get("AGW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
NATS_URL = os.environ.get("AGW_TEST_NATS_URL", "nats://127.0.0.1:4222")
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"

# The build (a few minutes the first time on a busy machine) runs inside the first test's
# setup; every wait below has its own bound.
pytestmark = pytest.mark.timeout(1500)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required under CI=true)")
    pytest.skip(reason)


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*build_image.PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:3])} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on right now (all held open together, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    """(status, body); a refused or timed-out connection is status 0, as a failed probe."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (OSError, TimeoutError):
        return 0, ""


def http_post(
    url: str, payload: Any, headers: Mapping[str, str], timeout: float = 20.0
) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"content-type": "application/json", **headers}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, dict(response.headers), json.loads(response.read())


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# --- the image ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    tag: str
    config: dict[str, Any]  # `podman image inspect` of the built image
    size: int  # bytes


@pytest.fixture(scope="session")
def image() -> Iterator[Image]:
    """deploy/Dockerfile built on the debootstrapped base, once per test run."""
    if os.geteuid() != 0:
        _unavailable("building and running the image needs root (podman with debootstrap)")
    missing = build_image.missing_tools()
    if missing:
        _unavailable(f"{', '.join(missing)} not installed: run `make image-tools` as root (apt-get)")
    tag = f"localhost/agent-gateway:test-{uuid.uuid4().hex[:12]}"
    try:
        build_image.build(tag)
    except build_image.ImageBuildError as exc:
        pytest.fail(str(exc))
    (inspected,) = json.loads(podman("image", "inspect", tag).stdout)
    try:
        yield Image(tag, inspected, int(inspected["Size"]))
    finally:
        # Only this run's name goes; the layers stay as the next run's build cache.
        podman("untag", tag, tag, check=False)


class Container:
    """One `podman run -d` of the image, removed at the end whatever happened."""

    def __init__(self, image: Image, *options: str, args: Sequence[str] = ()) -> None:
        self.name = f"agw-test-{uuid.uuid4().hex[:12]}"
        podman("run", "-d", "--name", self.name, *build_image.RUN_LIMITS, *options, image.tag, *args)

    def logs(self) -> str:
        done = podman("logs", self.name, check=False)
        return done.stdout + done.stderr

    def running(self) -> bool:
        return podman("inspect", "--format", "{{.State.Running}}", self.name).stdout.strip() == "true"

    def wait_ready(self, timeout: float = 90) -> str:
        """The gateway's `ready:` line (the CLI prints it once every listener is up)."""

        def ready() -> bool:
            if "ready: http=" in self.logs():
                return True
            assert self.running(), f"the container exited before it was ready:\n{self.logs()[-3000:]}"
            return False

        wait_until(ready, timeout, "the gateway's ready line")
        return next(line for line in self.logs().splitlines() if "ready: http=" in line)

    def exec(
        self, *argv: str, env: Mapping[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        extra = [f"--env={k}={v}" for k, v in (env or {}).items()]
        return podman("exec", *extra, self.name, *argv, timeout=timeout, check=False)

    def kill(self, sig: signal.Signals) -> None:
        podman("kill", "--signal", sig.name, self.name)

    def wait(self, timeout: float) -> int:
        return int(podman("wait", self.name, timeout=timeout).stdout.strip())

    def remove(self) -> None:
        podman("rm", "--force", "--time", "0", self.name, check=False)


@pytest.fixture(scope="module")
def baked(image: Image) -> Iterator[Container]:
    """The image as `docker run IMAGE` starts it: baked config, default command, own network."""
    container = Container(image, "--network=none")
    try:
        container.wait_ready()
        yield container
    finally:
        container.remove()


def inside_get(container: Container, url: str) -> tuple[int, Any]:
    """GET from inside the container, with the image's own Python (it has no curl)."""
    code = (
        "import json, sys, urllib.request, urllib.error\n"
        "try:\n    r = urllib.request.urlopen(sys.argv[1], timeout=5); print(r.status, r.read().decode())\n"
        "except urllib.error.HTTPError as e:\n    print(e.code, e.read().decode())\n"
    )
    done = container.exec("python", "-c", code, url)
    assert done.returncode == 0, done.stderr
    status, _, body = done.stdout.strip().partition(" ")
    return int(status), json.loads(body)


def test_the_baked_config_starts_and_answers_probes(baked: Container) -> None:
    line = baked.wait_ready()
    assert f"agent-gateway {__version__} ready: http=0.0.0.0:8080 grpc=0.0.0.0:50051 admin=0.0.0.0:9901" in line
    assert inside_get(baked, "http://127.0.0.1:9901/readyz") == (200, {"status": "ready", "breakers": {}})
    assert inside_get(baked, "http://127.0.0.1:9901/livez") == (200, {"status": "ok"})
    status, _ = inside_get(baked, "http://127.0.0.1:8080/healthz")
    assert status == 200


def test_the_image_healthcheck_succeeds_and_would_notice_a_dead_gateway(image: Image, baked: Container) -> None:
    health = image.config["Healthcheck"]  # kept because the build uses --format docker
    assert health["Test"][0] == "CMD"
    command = health["Test"][1:]
    assert baked.exec(*command).returncode == 0
    assert podman("healthcheck", "run", baked.name, check=False).returncode == 0
    # The same command against a port nothing listens on fails: the check is no constant.
    assert baked.exec(*command, env={"AGW_HEALTH_URL": "http://127.0.0.1:1/readyz"}).returncode != 0


def test_runs_as_the_non_root_user_10001(image: Image, baked: Container) -> None:
    assert image.config["Config"]["User"] == "10001:10001"
    status = baked.exec("cat", "/proc/1/status").stdout
    uids = re.search(r"^Uid:\s+(.+)$", status, re.M)
    gids = re.search(r"^Gid:\s+(.+)$", status, re.M)
    assert uids is not None and uids.group(1).split() == ["10001"] * 4
    assert gids is not None and gids.group(1).split() == ["10001"] * 4
    assert "agent-gateway" in baked.exec("cat", "/proc/1/cmdline").stdout


def writable_paths(container: Container) -> list[str]:
    """Every path the container's user may write, outside the kernel's /proc, /sys and /dev."""
    find = "find / ( -path /proc -o -path /sys -o -path /dev ) -prune -o -writable -print"
    done = container.exec(*find.split(), timeout=120)
    return sorted(done.stdout.split())


def test_nothing_but_tmp_is_writable(baked: Container) -> None:
    # Even without --read-only, the user owns nothing and only /tmp (the manifests' emptyDir) is open.
    assert [p for p in writable_paths(baked) if p != "/tmp" and not p.startswith("/tmp/")] == []
    assert baked.exec("touch", "/tmp/probe").returncode == 0


def test_the_image_holds_no_compilers_no_pip_and_no_test_code(baked: Container) -> None:
    script = (
        "for c in cc gcc g++ c++ clang tcc ld as make pip pip3 curl wget; do"
        ' command -v "$c" && echo "found $c"; done;'
        # compiler drivers and their back ends, wherever they hide (gcc-12-base is only a folder)
        " find / -xdev -type f -perm /111 \\( -name '*gcc*' -o -name 'cc1*' -o -name '*-ld' -o -name 'collect2' \\) -print;"
        " find / -xdev \\( -name 'pip' -o -name 'pip-*' -o -name 'pip3*' -o -name ensurepip -o -name '*.whl'"
        " -o -name conftest.py -o -name pytest -o -name _pytest -o -name hypothesis"
        " -o -path '*/site-packages/tests' \\) -print"
    )
    done = baked.exec("sh", "-c", script, timeout=120)
    assert done.stdout.split() == [], done.stdout
    for module in ("pip", "ensurepip", "setuptools", "pytest", "tests"):
        probe = baked.exec("python", "-c", f"import {module}")
        assert probe.returncode != 0, f"{module} is importable in the image"
    # Our own code is the three packages, and none of the repository's tests came along.
    files = baked.exec(
        "python", "-c", "import importlib.metadata as m; print(*m.files('agent-gateway'))"
    ).stdout.split()
    tops = {f.split("/")[0] for f in files if f.endswith(".py")}
    assert tops == {"gateway", "agentgateway", "agentgateway_client"}
    assert not [f for f in files if "/tests/" in f or f.split("/")[-1].startswith("test_")]


def test_image_size(image: Image, baked: Container, capsys: pytest.CaptureFixture[str]) -> None:
    venv = int(baked.exec("du", "-sk", "/opt/agent-gateway").stdout.split()[0]) * 1024
    with capsys.disabled():
        print(f"\nimage {image.tag}: {image.size / 1e6:.0f} MB, of which the venv {venv / 1e6:.0f} MB")
    # The base is about 100 MB; a compiler toolchain or a cache left behind would double it.
    # Guards against bloat: 251 MB and a 132 MB venv with a2a-sdk (the A2A gRPC binding); raise them
    # only for a reason.
    assert image.size < 275e6
    assert venv < 145e6


# --- the dependency set --------------------------------------------------------------------------


def _lock(env: Mapping[str, str]) -> dict[str, str]:
    """The lock's pins for a Python with these marker values."""
    pins = {}
    for line in (DEPLOY / "requirements.lock").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({**env, "extra": ""}):
                (pin,) = requirement.specifier
                assert pin.operator == "==", f"deploy/requirements.lock: {line} is no exact pin"
                pins[canonicalize_name(requirement.name)] = pin.version
    return pins


_DISTRIBUTIONS = """
import importlib.metadata as m, json, os, platform, sys
env = {
    "implementation_name": sys.implementation.name, "os_name": os.name,
    "platform_machine": platform.machine(), "platform_python_implementation": platform.python_implementation(),
    "platform_release": platform.release(), "platform_system": platform.system(),
    "platform_version": platform.version(), "python_full_version": platform.python_version(),
    "python_version": ".".join(platform.python_version_tuple()[:2]), "sys_platform": sys.platform,
    "implementation_version": platform.python_version(),
}
dists = {d.metadata["Name"]: {"version": d.version, "requires": d.requires or []} for d in m.distributions()}
print(json.dumps({"env": env, "dists": dists}))
"""


def required_closure(
    roots: Sequence[str], dists: Mapping[str, Mapping[str, Any]], env: Mapping[str, str]
) -> dict[str, str]:
    """name -> installed version of everything ``roots`` need, following each installed
    distribution's own Requires-Dist (extras and markers evaluated for the image)."""
    installed = {canonicalize_name(name): info for name, info in dists.items()}
    extras_seen: dict[str, set[str]] = {}
    queue = [Requirement(spec) for spec in roots]
    queue = [r for r in queue if r.marker is None or r.marker.evaluate({**env, "extra": ""})]
    while queue:
        requirement = queue.pop()
        name = canonicalize_name(requirement.name)
        assert name in installed, f"{requirement} is required but not installed in the image"
        version = installed[name]["version"]
        assert requirement.specifier.contains(version, prereleases=True), f"{name}=={version} breaks {requirement}"
        first = name not in extras_seen
        todo = ({""} if first else set()) | (set(requirement.extras) - extras_seen.get(name, set()))
        extras_seen.setdefault(name, set()).update(todo)
        for spec in installed[name]["requires"]:
            dependency = Requirement(spec)
            marker = dependency.marker
            if (marker is None and "" in todo) or (
                marker is not None and any(marker.evaluate({**env, "extra": extra}) for extra in todo)
            ):
                queue.append(dependency)
    return {name: installed[name]["version"] for name in extras_seen}


def test_the_lock_is_exactly_what_pyproject_needs_in_the_image(baked: Container) -> None:
    done = baked.exec("/opt/agent-gateway/bin/python", "-c", _DISTRIBUTIONS)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    dists, env = report["dists"], report["env"]
    roots = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    needed = required_closure(roots, dists, env)
    lock = _lock(env)
    regenerate = "regenerate it with `make image-lock`"
    assert sorted(set(lock) - set(needed)) == [], f"deploy/requirements.lock pins packages nothing needs: {regenerate}"
    assert sorted(set(needed) - set(lock)) == [], f"deploy/requirements.lock misses required packages: {regenerate}"
    installed = {canonicalize_name(n): info["version"] for n, info in dists.items()}
    installed.pop("agent-gateway")
    assert installed == lock, "the image's venv holds other versions than the lock"


def test_the_closure_follows_extras_and_markers_and_refuses_what_is_missing_or_out_of_range() -> None:
    dists = {
        "a": {"version": "1.0", "requires": ["b>=2", "c; extra == 'x'", "d; sys_platform == 'win32'"]},
        "b": {"version": "2.1", "requires": []},
        "c": {"version": "1.0", "requires": []},
        "d": {"version": "1.0", "requires": []},
    }
    env = {"sys_platform": "linux", "python_version": "3.11"}
    assert required_closure(["a"], dists, env) == {"a": "1.0", "b": "2.1"}
    assert required_closure(["a[x]"], dists, env) == {"a": "1.0", "b": "2.1", "c": "1.0"}
    with pytest.raises(AssertionError, match="breaks"):
        required_closure(["a", "b>=3"], dists, env)
    with pytest.raises(AssertionError, match="not installed"):
        required_closure(["e"], dists, env)


def test_a_changed_base_recipe_gets_a_new_base(monkeypatch: pytest.MonkeyPatch) -> None:
    before = build_image.base_tag()
    assert before == build_image.base_tag()
    monkeypatch.setattr(build_image, "BASE_PACKAGES", (*build_image.BASE_PACKAGES, "tzdata"))
    assert build_image.base_tag() != before


# --- a user's container: calls through both fronts to an agent on the host ---------------------


@dataclass
class Upstream:
    """examples/echo_agent on the host's loopback, in a thread of its own (the tests block on
    podman), recording the headers of every request that reaches it."""

    url: str = ""
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._serve(),), daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "the upstream did not start"

    async def _serve(self) -> None:
        @web.middleware
        async def record(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            self.seen.append((request.path, dict(request.headers)))
            return await handler(request)

        async def slow(request: web.Request) -> web.Response:
            await asyncio.sleep(float(request.query.get("delay", "0")))
            return web.json_response({"slept": request.query.get("delay")})

        app = echo_agent.build_app()
        app.middlewares.append(record)
        app.router.add_get("/slow", slow)
        runner, self.url = await start_app(app)
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.close()


@dataclass(frozen=True)
class Served:
    container: Container
    http: str
    grpc: str
    admin: str
    drain_timeout: float


def serve(image: Image, upstream: Upstream, tmp: Path, drain_timeout: float = 10) -> Served:
    http, grpc_port, admin = free_ports(3)
    config_dir = tmp / "config"
    config_dir.mkdir()
    (config_dir / "gateway.yaml").write_text(
        f"listeners:\n  http: {{address: '127.0.0.1:{http}'}}\n  grpc: {{address: '127.0.0.1:{grpc_port}'}}\n"
        f"admin: {{address: '127.0.0.1:{admin}'}}\n"
        f"agents:\n  echo:\n    kind: http\n    endpoint: {upstream.url}\n"
        f"server: {{drain_timeout: {drain_timeout:g}s}}\n"
        "state: {sqlite: {path: '/tmp/state.db'}}\n"
    )
    container = Container(
        image,
        "--network=host",
        f"--volume={config_dir}:/etc/agent-gateway:ro",
        f"--env=AGW_HEALTH_URL=http://127.0.0.1:{admin}/readyz",
    )
    container.wait_ready()
    return Served(container, f"127.0.0.1:{http}", f"127.0.0.1:{grpc_port}", f"127.0.0.1:{admin}", drain_timeout)


@pytest.fixture
def served(image: Image, upstream: Upstream, tmp_path: Path) -> Iterator[Served]:
    gateway = serve(image, upstream, tmp_path)
    try:
        yield gateway
    finally:
        gateway.container.remove()


def _assert_injected(headers: Mapping[str, str], request_id: str) -> None:
    lower = {k.lower(): v for k, v in headers.items()}
    _, trace_id, parent, _ = lower["traceparent"].split("-")
    assert trace_id == TRACE_ID  # the caller's trace continues upstream
    assert parent != TRACEPARENT.split("-")[2]  # under the gateway's own attempt span
    assert lower["x-request-id"] == request_id
    assert lower["x-session-id"] == "s-1"
    assert "agw.hops=1" in lower["baggage"]
    assert 0 < int(lower["x-timeout-ms"]) <= 10_500  # the caller's deadline, as time left (gRPC rounds up)


def test_calls_through_both_fronts_reach_the_host_agent_with_context_headers(
    served: Served, upstream: Upstream
) -> None:
    assert http_get(f"http://{served.admin}/readyz")[0] == 200
    before = len(upstream.seen)
    status, headers, body = http_post(
        f"http://{served.http}/v1/agents/echo/invoke",
        {
            "messages": [{"role": "ROLE_USER", "parts": [{"text": "over http"}]}],
            "context": {"sessionId": "s-1"},
            "options": {"timeout": "10s"},
        },
        {"traceparent": TRACEPARENT},
    )
    assert status == 200
    assert body["messages"][0]["parts"][0]["text"] == "echo: over http"
    path, seen = upstream.seen[before]
    assert path == "/invoke"
    _assert_injected(seen, headers["x-request-id"])

    with grpc.insecure_channel(served.grpc) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        request = pb.InvokeRequest(
            agent="echo",
            messages=[pb.Message(role=pb.ROLE_USER, parts=[pb.Part(text="over grpc")])],
            context=pb.Context(session_id="s-1"),
        )
        response = pb_grpc.AgentGatewayServiceStub(channel).Invoke(
            request, metadata=(("traceparent", TRACEPARENT),), timeout=10
        )
    assert response.messages[0].parts[0].text == "echo: over grpc"
    path, seen = upstream.seen[before + 1]
    assert path == "/invoke"
    _assert_injected(seen, response.context.request_id)


def _in_flight(url: str, payload: Any) -> tuple[threading.Thread, list[Any]]:
    """Start a blocking call in a thread; the list receives its (status, body) or the error."""
    outcome: list[Any] = []

    def call() -> None:
        try:
            status, _, body = http_post(url, payload, {}, timeout=60)
            outcome.append((status, body))
        except Exception as exc:  # reported by the test's assertion
            outcome.append(exc)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread, outcome


def test_sigterm_drains_the_call_in_flight_and_exits_zero_within_the_drain_time(
    served: Served, upstream: Upstream
) -> None:
    delay = 3.0
    before = len(upstream.seen)
    thread, outcome = _in_flight(
        f"http://{served.http}/v1/agents/echo/invoke",
        {"messages": [{"role": "ROLE_USER", "parts": [{"text": "slow"}]}], "options": {"params": {"delay": delay}}},
    )
    wait_until(lambda: len(upstream.seen) > before, 20, "the call to reach the upstream")
    served.container.kill(signal.SIGTERM)
    sent = time.monotonic()
    # Draining: readiness fails at once, so a load balancer stops sending.
    wait_until(lambda: http_get(f"http://{served.admin}/readyz")[0] == 503, delay, "/readyz to report draining", 0.05)
    code = served.container.wait(timeout=served.drain_timeout + 30)
    elapsed = time.monotonic() - sent
    thread.join(10)
    assert outcome and outcome[0] == (200, outcome[0][1]), outcome
    assert outcome[0][1]["messages"][0]["parts"][0]["text"] == "echo: slow"
    assert code == 0, served.container.logs()[-2000:]
    assert elapsed < served.drain_timeout, f"exit took {elapsed:.1f} s, drain_timeout is {served.drain_timeout:g} s"
    assert elapsed > delay - 1.5, "it exited before the call in flight was done"


# --- the Kubernetes sidecar manifest, run as the kubelet would -----------------------------------


@dataclass(frozen=True)
class Pod:
    """deploy/kubernetes/sidecar.yaml's gateway container, running."""

    container: Container
    spec: dict[str, Any]  # the gateway container of the manifest
    pod: dict[str, Any]  # the pod template's spec
    config: dict[str, Any]  # its gateway.yaml, as mounted
    ports: dict[str, int]  # the manifest's named container ports -> where they listen here
    collector: OtlpReceiver  # plays the manifest's otel-collector


def _sidecar() -> tuple[dict[str, Any], dict[str, Any], str]:
    docs = [d for d in yaml.safe_load_all(SIDECAR.read_text(encoding="utf-8")) if d]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (gateway,) = [c for c in pod["initContainers"] if c["name"] == "gateway"]
    (config_map,) = [d for d in docs if d["kind"] == "ConfigMap"]
    return pod, gateway, config_map["data"]["gateway.yaml"]


def _quantity(value: str) -> int:
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
    number, unit = re.fullmatch(r"(\d+)([KMG]i)?", value).groups()  # type: ignore[union-attr]
    return int(number) * units.get(unit or "", 1)


def _require_services() -> None:
    for url in (REDIS_URL, NATS_URL):
        host, _, rest = url.split("://")[1].partition(":")
        try:
            socket.create_connection((host, int(rest.split("/")[0])), timeout=1).close()
        except OSError as exc:
            _unavailable(f"the sidecar config needs {url}, which is not reachable: {exc}")


def run_pod(image: Image, upstream: Upstream, collector: OtlpReceiver, tmp: Path) -> Pod:
    _require_services()
    pod, spec, text = _sidecar()
    config = yaml.safe_load(text)
    # The pod's network is the host's here: every named port moves to a free loopback port,
    # and the agent "in the pod" is the test's upstream.
    ports = dict(zip([p["name"] for p in spec["ports"]], free_ports(len(spec["ports"])), strict=True))
    by_number = {p["containerPort"]: ports[p["name"]] for p in spec["ports"]}
    for section in (config["listeners"]["http"], config["listeners"]["grpc"], config["admin"]):
        section["address"] = f"127.0.0.1:{by_number[int(section['address'].rpartition(':')[2])]}"
    local = [a for a in config["agents"].values() if "127.0.0.1" in a["endpoint"]]
    for agent in local:
        agent["endpoint"] = upstream.url
    env = {e["name"]: e["value"] for e in spec["env"]}
    env.update(REDIS_URL=REDIS_URL, NATS_URL=NATS_URL, OTLP_ENDPOINT=collector.grpc_endpoint)

    security = spec["securityContext"]
    options = ["--network=host", f"--user={security['runAsUser']}:{security['runAsGroup']}"]
    options += [f"--env={k}={v}" for k, v in env.items()]
    if security.get("readOnlyRootFilesystem"):
        options.append("--read-only")
    options += [f"--cap-drop={cap}" for cap in security.get("capabilities", {}).get("drop", [])]
    if security.get("allowPrivilegeEscalation") is False:
        options.append("--security-opt=no-new-privileges")
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in spec["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            folder = tmp / mount["name"]
            folder.mkdir()
            (folder / "gateway.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
            options.append(f"--volume={folder}:{mount['mountPath']}:{'ro' if mount.get('readOnly') else 'rw'}")
        else:  # an emptyDir: empty, writable by anyone, capped at its sizeLimit
            size = _quantity(volume["emptyDir"].get("sizeLimit", "64Mi"))
            options.append(f"--tmpfs={mount['mountPath']}:rw,size={size},mode=1777")
    container = Container(image, *options, args=spec["args"])
    return Pod(container, spec, pod, config, ports, collector)


@pytest.fixture
def sidecar(image: Image, upstream: Upstream, tmp_path: Path) -> Iterator[Pod]:
    with OtlpReceiver() as collector:
        pod = run_pod(image, upstream, collector, tmp_path)
        try:
            yield pod
        finally:
            pod.container.remove()


def probe(pod: Pod, kind: str) -> bool:
    """One kubelet httpGet probe: success is a 2xx or 3xx within timeoutSeconds."""
    spec = pod.spec[kind]["httpGet"]
    port = pod.ports[spec["port"]] if isinstance(spec["port"], str) else spec["port"]
    status, _ = http_get(f"http://127.0.0.1:{port}{spec['path']}", timeout=pod.spec[kind].get("timeoutSeconds", 1))
    return 200 <= status < 400


def test_the_sidecar_manifest_probes_ports_user_and_read_only_root(sidecar: Pod) -> None:
    startup = sidecar.spec["startupProbe"]
    for _ in range(startup["failureThreshold"]):  # the kubelet's startup window
        if probe(sidecar, "startupProbe"):
            break
        time.sleep(startup["periodSeconds"])
    else:
        raise AssertionError(f"the startup probe never passed:\n{sidecar.container.logs()[-3000:]}")
    sidecar.container.wait_ready(30)
    wait_until(lambda: probe(sidecar, "readinessProbe"), 30, "the readiness probe")
    assert probe(sidecar, "livenessProbe")

    # Every named port serves what its name says.
    assert http_get(f"http://127.0.0.1:{sidecar.ports['http']}/healthz")[0] == 200
    with grpc.insecure_channel(f"127.0.0.1:{sidecar.ports['grpc']}") as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING

    security = sidecar.spec["securityContext"]
    status = sidecar.container.exec("cat", "/proc/1/status").stdout
    assert re.search(rf"^Uid:\s+{security['runAsUser']}\s", status, re.M)
    assert re.search(rf"^Gid:\s+{security['runAsGroup']}\s", status, re.M)
    assert re.search(r"^CapEff:\s+0+$", status, re.M)
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.M)
    # Read-only root: the gateway runs on it, only the emptyDir takes writes.
    writable = {m["mountPath"] for m in sidecar.spec["volumeMounts"] if not m.get("readOnly")}
    assert {p for p in writable_paths(sidecar.container) if not any(p.startswith(w) for w in writable)} == set()
    denied = sidecar.container.exec("touch", "/opt/agent-gateway/probe", "/etc/agent-gateway/probe")
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    for mount in writable:
        assert sidecar.container.exec("touch", f"{mount}/probe").returncode == 0


def test_the_sidecar_prestop_and_drain_fit_the_grace_period(sidecar: Pod, upstream: Upstream) -> None:
    sidecar.container.wait_ready()
    wait_until(lambda: probe(sidecar, "readinessProbe"), 30, "the readiness probe")
    grace = sidecar.pod["terminationGracePeriodSeconds"]
    drain = float(str(sidecar.config["server"]["drain_timeout"]).removesuffix("s"))
    pre_stop = sidecar.spec["lifecycle"]["preStop"]
    pause = float(pre_stop["sleep"]["seconds"])  # the kubelet sleeps; nothing runs in the container
    assert set(pre_stop) == {"sleep"}, "run the new preStop handler here the way the kubelet would"
    delay = 4.0
    agent = next(n for n, a in sidecar.config["agents"].items() if a["endpoint"] == upstream.url)
    outcome: list[Any] = []

    def call() -> None:
        outcome.append(http_get(f"http://127.0.0.1:{sidecar.ports['http']}/v1/proxy/{agent}/slow?delay={delay}", 60))

    # The kubelet: preStop first (the gateway keeps serving while endpoints drop the pod),
    # then SIGTERM; the grace period counts from the start of preStop.
    started = time.monotonic()
    thread = threading.Thread(target=call, daemon=True)
    wait_until(lambda: time.monotonic() - started >= pause - 1, pause, "the preStop pause")
    before = len(upstream.seen)
    thread.start()  # a call routed just before SIGTERM
    wait_until(lambda: len(upstream.seen) > before, 20, "the call to reach the agent")
    wait_until(lambda: time.monotonic() - started >= pause, pause, "the preStop pause", 0.05)
    assert probe(sidecar, "readinessProbe"), "the gateway stopped serving during preStop"
    sidecar.container.kill(signal.SIGTERM)
    sent = time.monotonic()
    wait_until(lambda: not probe(sidecar, "readinessProbe"), delay, "readiness to fail while draining", 0.05)
    code = sidecar.container.wait(timeout=grace + 30)
    finished = time.monotonic()
    thread.join(10)
    assert code == 0, sidecar.container.logs()[-2000:]
    assert outcome and outcome[0][0] == 200, outcome
    assert json.loads(outcome[0][1]) == {"slept": str(delay)}
    assert finished - sent < drain, f"the drain took {finished - sent:.1f} s, server.drain_timeout is {drain:g} s"
    # A native sidecar stops after the pod's containers, within the same grace period.
    agents_stop = max(
        (
            c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
            for c in sidecar.pod["containers"]
        ),
        default=0,
    )
    assert agents_stop + finished - started < grace, "the kubelet would have sent SIGKILL"
    # The call's span reached the collector, under the manifest's service name, by the exit at the latest.
    service = sidecar.config["telemetry"]["tracing"]["service_name"]
    assert any(s.service == service and s.kind == KIND_SERVER for s in sidecar.collector.spans())
