"""Child processes of a benchmark run: started pinned to CPUs, waited for until
they print their ready line, measured (RSS), and always stopped."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from bench.agents import raise_nofile_limit

ROOT = Path(__file__).resolve().parent.parent


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))


def pin_plan() -> dict[str, list[int]]:
    """Which CPUs each role runs on. The proxy under test (gateway or nginx) gets
    a core of its own; upstream agents and load generators share the other, the
    same for every target, so only the hop differs between direct and proxied."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return {"proxy": cpus, "upstream": cpus, "client": cpus}
    return {"proxy": [cpus[0]], "upstream": cpus[1:], "client": cpus[1:]}


def _preexec(cpus: Sequence[int]) -> None:
    os.sched_setaffinity(0, cpus)
    raise_nofile_limit()


class Child:
    """One started process; ``ready`` holds the match of its ready line."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        cpus: Sequence[int],
        ready: str | None = None,
        timeout: float = 30.0,
        cwd: Path = ROOT,
        stdin: bool = False,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.cpus = list(cpus)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # stderr goes to a file: a pipe nobody drains would block a chatty server (access logs).
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - lives as long as the child; closed in stop()
        self.proc = subprocess.Popen(
            self.argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.log,
            preexec_fn=lambda: _preexec(self.cpus),
            text=True,
        )
        self.ready: re.Match[str] | None = None
        if ready is not None:
            self.ready = self.wait_for(ready, timeout)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """Read stdout lines until one matches ``pattern`` (bounded by ``timeout``)."""
        regex = re.compile(pattern)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            while (left := deadline - time.monotonic()) > 0:
                if not selector.select(left):
                    break
                line = self.proc.stdout.readline()
                if not line:
                    break
                if match := regex.search(line):
                    return match
        self.stop()
        stderr = self.stderr_tail()
        raise RuntimeError(f"{self.name} did not print {pattern!r} within {timeout}s: {stderr}")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def rss_kb(self) -> int:
        """Resident set size from /proc/<pid>/status (VmRSS, in kB)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError(f"no VmRSS for {self.name}")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) this process and its live descendants have used."""
        return process_tree_cpu_seconds(self.pid)

    def stderr_tail(self, size: int = 2000) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-size:]

    def communicate(self, timeout: float) -> tuple[str, str]:
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise RuntimeError(f"{self.name} took longer than {timeout}s") from None
        return out, self.stderr_tail(1_000_000)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        self.log.close()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.stop()


TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone between listing and reading
        return None
    # The command name may hold spaces and parentheses: the fields start after the last ')'.
    return text[text.rindex(")") + 2 :].split()


def process_tree_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads) and of its live descendants, from
    /proc/<pid>/stat: the process's own accounting, so a proxy's CPU per call is
    measured where it is spent (nginx's worker is a child of its master)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))) is not None:
            parents[int(entry.name)] = int(fields[1])
    tree, grew = {pid}, True
    while grew:
        more = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    total = 0
    for member in tree:
        if (fields := _stat_fields(member)) is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / TICKS_PER_SECOND


def python(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def start_agents(cpus: Sequence[int], hold_max: float = 120.0) -> tuple[Child, int, int]:
    """The upstream agents process; returns it with its HTTP and gRPC ports."""
    child = Child(
        "upstream", python("bench.agents", "--hold-max", str(hold_max)), cpus, ready=r"ready http=(\d+) grpc=(\d+)"
    )
    assert child.ready is not None
    return child, int(child.ready.group(1)), int(child.ready.group(2))


def start_reference(name: str, upstream_port: int, cpus: Sequence[int]) -> tuple[Child, int]:
    """One of bench/references' proxies in front of ``127.0.0.1:upstream_port``; returns it with its port."""
    argv = python(f"bench.references.{name}", "--upstream", f"127.0.0.1:{upstream_port}")
    child = Child(name, argv, cpus, ready=r"ready port=(\d+)")
    assert child.ready is not None
    return child, int(child.ready.group(1))


def start_gateway(config_path: Path, cpus: Sequence[int], workers: int = 1) -> tuple[Child, str, str]:
    """``agent-gateway run`` on ``config_path`` (``--workers`` when more than one); returns
    it with its HTTP and gRPC addresses (a supervisor's workers are its descendants)."""
    argv = python("gateway", "run", "-c", str(config_path), "--log-level", "warning")
    if workers > 1:
        argv += ["--workers", str(workers)]
    child = Child("gateway", argv, cpus, ready=r"ready: http=(\S+) grpc=(\S+) admin=(\S+)", timeout=90.0)
    assert child.ready is not None
    return child, child.ready.group(1), child.ready.group(2)
