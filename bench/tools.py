"""``python -m bench.tools``: install the external load generators and nginx
(Debian packages wrk, nghttp2-client, nginx) when missing and when this user
may; prints what is there. The bench falls back to its Python client, and
skips the nginx column, for whatever stays missing."""

from __future__ import annotations

import os
import shutil
import subprocess

PACKAGES = {"wrk": "wrk", "h2load": "nghttp2-client", "nginx": "nginx"}


def _have(tool: str) -> bool:
    return shutil.which(tool) is not None or (tool == "nginx" and os.path.exists("/usr/sbin/nginx"))


def main() -> None:
    missing = [package for tool, package in PACKAGES.items() if not _have(tool)]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
            try:
                subprocess.run(argv, env=env, capture_output=True, timeout=600, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                print(f"bench tools: {' '.join(argv[:2])} failed: {exc}")
                break
    for tool in PACKAGES:
        print(f"bench tools: {tool}: {'yes' if _have(tool) else 'missing (falls back or skips)'}")


if __name__ == "__main__":
    main()
