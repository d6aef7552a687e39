"""nginx as the reference reverse proxy: one worker, keep-alive to the upstream,
run as the current user from a temporary prefix (``nginx -p DIR -c CONF``)."""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from bench.procs import Child

CONF = """\
{user}worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  keepalive_requests 1000000;
  upstream agent_http {{ server 127.0.0.1:{http_upstream}; keepalive 64; }}
  upstream agent_grpc {{ server 127.0.0.1:{grpc_upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{http_port};
    location / {{
      proxy_pass http://agent_http;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
  server {{
    listen 127.0.0.1:{grpc_port} http2;
    http2_max_concurrent_streams 1024;
    location / {{ grpc_pass grpc://agent_grpc; }}
  }}
}}
"""


def ensure_nginx() -> str | None:
    """The nginx binary, installing the Debian package when missing and allowed;
    None (with the reason logged by the caller) when it cannot be had."""
    found = shutil.which("nginx") or (os.path.exists("/usr/sbin/nginx") and "/usr/sbin/nginx") or None
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "install", "-y", "-qq", "nginx"], env=env, capture_output=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return shutil.which("nginx") or (os.path.exists("/usr/sbin/nginx") and "/usr/sbin/nginx") or None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_listening(port: int, child: Child, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    child.stop()
    raise RuntimeError(f"nginx did not listen on {port}: {child.stderr_tail()}")


def start_nginx(
    binary: str, prefix: Path, http_upstream: int, grpc_upstream: int, cpus: Sequence[int]
) -> tuple[Child, int, int]:
    """nginx proxying HTTP and gRPC to the bench agents; returns it with its two ports."""
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    http_port, grpc_port = free_port(), free_port()
    # As root nginx would switch its worker to `nobody`; stay the current user.
    user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
    conf = prefix / "nginx.conf"
    conf.write_text(
        CONF.format(
            user=user,
            prefix=prefix,
            http_upstream=http_upstream,
            grpc_upstream=grpc_upstream,
            http_port=http_port,
            grpc_port=grpc_port,
        )
    )
    child = Child("nginx", [binary, "-p", str(prefix), "-c", str(conf)], cpus)
    _wait_listening(http_port, child)
    _wait_listening(grpc_port, child)
    return child, http_port, grpc_port


@contextlib.contextmanager
def nginx_beside(
    http_upstream: int,
    grpc_upstream: int,
    cpus: Sequence[int],
    notes: list[str],
    wanted: bool = True,
    started: list[Child] | None = None,
) -> Iterator[tuple[int, int] | None]:
    """nginx proxying the bench agents for one scenario: its (HTTP, gRPC) ports, or None
    (with the reason added to ``notes``) when it is not wanted or cannot be had. The
    process is appended to ``started`` when given (to read its CPU time)."""
    binary = ensure_nginx() if wanted else None
    if not wanted:
        notes.append("nginx: left out of the quick run")
    elif binary is None:
        notes.append("nginx: not installed and could not be installed here; its columns are empty")
    if binary is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as prefix:
        child, http_port, grpc_port = start_nginx(binary, Path(prefix), http_upstream, grpc_upstream, cpus)
        if started is not None:
            started.append(child)
        try:
            yield http_port, grpc_port
        finally:
            child.stop()
