"""Framework servers as subprocesses on free loopback ports, with readiness checks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    """A loopback port that was free a moment ago (the server binds it next)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def base_env(home: Path, **extra: str) -> dict[str, str]:
    """A small, offline-minded environment: no inherited credentials, HOME in a temp dir."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "share"),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.update(extra)
    return env


@dataclass
class ServerProcess:
    """A started server: its process, base URL and log file."""

    process: subprocess.Popen[bytes]
    url: str
    port: int
    log_path: Path
    # None: ready once the port accepts connections (a gRPC server).
    ready_path: str | None = "/"

    def is_ready(self) -> bool:
        if self.ready_path is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2):
                    return True
            except OSError:
                return False
        try:
            with urllib.request.urlopen(self.url + self.ready_path, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float = 60.0) -> ServerProcess:
        """Wait until ``GET ready_path`` answers 200 (or the port accepts); RuntimeError with the log tail otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.process.args!r} exited with {self.process.returncode} before it was ready:\n"
                    f"{self.log_tail()}"
                )
            if self.is_ready():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.process.args!r} was not ready within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 5.0) -> None:
        """Terminate the server (its own process group); kill it after ``grace`` seconds."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


def launch_server(
    argv: Sequence[str], *, port: int, cwd: Path, env: Mapping[str, str], ready_path: str | None, log_path: Path
) -> ServerProcess:
    """Start ``argv`` without waiting for it (see :meth:`ServerProcess.wait_ready`)."""
    log_file = open(log_path, "wb")  # noqa: SIM115 - the child writes to it for its whole life
    process = subprocess.Popen(
        list(argv), cwd=cwd, env=dict(env), stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
    )
    log_file.close()
    return ServerProcess(process, f"http://127.0.0.1:{port}", port, log_path, ready_path)


def start_server(
    argv: Sequence[str],
    *,
    port: int,
    cwd: Path,
    env: Mapping[str, str],
    ready_path: str | None,
    log_path: Path,
    timeout: float = 60.0,
) -> ServerProcess:
    """Start ``argv`` and wait until ``GET ready_path`` answers 200; RuntimeError with the log otherwise."""
    server = launch_server(argv, port=port, cwd=cwd, env=env, ready_path=ready_path, log_path=log_path)
    return server.wait_ready(timeout)
