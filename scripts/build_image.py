"""Build the container image (deploy/Dockerfile) without Docker and without registry access.

    python scripts/build_image.py [--tag agent-gateway:0.1.0]   (or `make image`)
    python scripts/build_image.py --tools                       (install podman, debootstrap, runc)

Where Docker can pull images, `docker build -f deploy/Dockerfile .` is all there is to it. Where
it cannot (no daemon, no registry), this builds the same Dockerfile with Debian's podman: the
pinned python base is replaced by a Debian bookworm root file system made with debootstrap
(`--build-arg PYTHON_IMAGE=localhost/agw-base:...`). The base is imported into podman's image
store once and reused by every later build; its tag carries a hash of the recipe (suite,
packages, mirror, CA bundle), so changing any of them builds a new one.

This machine's kernel needs `--isolation chroot` for the build and runc with cgroupfs and
explicit rlimits to run containers (`PODMAN_RUN` below); `--format docker` keeps the
Dockerfile's HEALTHCHECK, which the OCI image format has no field for.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "deploy" / "Dockerfile"

TOOLS = {"podman": "podman", "debootstrap": "debootstrap", "runc": "runc"}

# The base's recipe: what debootstrap installs. The Dockerfile needs `python` with venv
# (builder) and the standard library (runtime); ca-certificates for pip's TLS.
BASE_SUITE = "bookworm"
BASE_VARIANT = "minbase"
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
# Left out of the base, as the slim python images leave them out: documentation (but each
# package's copyright file), translations, manuals and apt's downloads and lists.
BASE_TRIM = (
    "usr/share/doc",
    "usr/share/locale",
    "usr/share/man",
    "usr/share/info",
    "var/cache/apt",
    "var/lib/apt/lists",
)
# The host's bundle is copied in, so pip inside the build trusts whatever pip on the host
# trusts (a company proxy's CA included).
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BASE_REPOSITORY = "localhost/agw-base"
# The Dockerfile's runtime stage carries it: how old untagged builds of this image are found.
IMAGE_LABEL = "org.opencontainers.image.title=agent-gateway"

# `podman` with the options every call here needs: runc (crun is refused by this kernel)
# and cgroupfs (no systemd session to create scopes in).
PODMAN = ("podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs")
# `podman run` also needs explicit rlimits: the defaults are above what this host grants.
RUN_LIMITS = ("--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096")


class ImageBuildError(RuntimeError):
    """A tool is missing or a build step failed; the message says which and what to do."""


def missing_tools() -> list[str]:
    """The Debian packages of TOOLS whose command is not on PATH (sbin included)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return [package for tool, package in TOOLS.items() if shutil.which(tool, path=path) is None]


def install_tools() -> list[str]:
    """Install the missing tools with apt-get when running as root; returns what is still missing."""
    missing = missing_tools()
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, check=False)
            if done.returncode != 0:
                print(f"image tools: {' '.join(argv[:2])} failed: {done.stderr.strip()[-500:]}", file=sys.stderr)
                break
    return missing_tools()


def _tool(name: str) -> str:
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    found = shutil.which(name, path=path)
    if found is None:
        raise ImageBuildError(f"{name} is not installed: run `python scripts/build_image.py --tools` as root")
    return found


def host_mirror() -> str | None:
    """The Debian mirror the host's apt uses for BASE_SUITE, so the base comes from the same place."""
    sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for path in sources:
        for stanza in path.read_text(encoding="utf-8").split("\n\n"):
            fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.+)$", stanza, re.M))
            if BASE_SUITE in fields.get("Suites", "").split() and "deb" in fields.get("Types", "").split():
                return fields.get("URIs", "").split()[0] or None
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for line in legacy.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and parts[2] == BASE_SUITE:
                return next(p for p in parts[1:] if not p.startswith("["))
    return None  # debootstrap's own default


def base_tag() -> str:
    """The base image's name; its tag changes whenever the recipe (or the CA bundle) does."""
    recipe = hashlib.sha256()
    for part in (BASE_SUITE, BASE_VARIANT, ",".join(BASE_PACKAGES), ",".join(BASE_TRIM), host_mirror() or ""):
        recipe.update(part.encode() + b"\0")
    recipe.update(CA_BUNDLE.read_bytes() if CA_BUNDLE.exists() else b"")
    return f"{BASE_REPOSITORY}:{BASE_SUITE}-{recipe.hexdigest()[:12]}"


def image_exists(ref: str) -> bool:
    return subprocess.run([*PODMAN, "image", "exists", ref], check=False).returncode == 0


def _trim(rootfs: Path) -> None:
    for folder in BASE_TRIM:
        for parent, dirs, files in os.walk(rootfs / folder, topdown=False):  # never follows symlinks
            for name in files:
                if name != "copyright":
                    os.unlink(os.path.join(parent, name))
            for name in dirs:
                path = os.path.join(parent, name)
                if os.path.islink(path):
                    os.unlink(path)
                elif not os.listdir(path):
                    os.rmdir(path)


@contextlib.contextmanager
def _exclusive(name: str) -> Iterator[None]:
    """One builder at a time per machine (several checkouts may run the suite at once)."""
    with open(Path(tempfile.gettempdir()) / f"agent-gateway-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _run(argv: list[str], what: str, timeout: float, stdin: IO[bytes] | None = None) -> None:
    done = subprocess.run(argv, stdin=stdin, capture_output=True, timeout=timeout, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).decode(errors="replace").strip()[-2000:]
        raise ImageBuildError(f"{what} failed (exit {done.returncode}): {' '.join(argv)}\n{tail}")


def ensure_base(log: bool = True) -> str:
    """The debootstrapped base in podman's store (built on first use); returns its name."""
    tag = base_tag()
    if image_exists(tag):
        return tag
    with _exclusive("base"):
        if image_exists(tag):  # another run built it while we waited
            return tag
        started = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix="agw-base-", dir="/var/tmp"))
        try:
            rootfs = work / "rootfs"
            argv = [_tool("debootstrap"), f"--variant={BASE_VARIANT}", f"--include={','.join(BASE_PACKAGES)}"]
            argv += [BASE_SUITE, str(rootfs)]
            mirror = host_mirror()
            if mirror:
                argv.append(mirror)
            _run(argv, "debootstrap", timeout=1800)
            if CA_BUNDLE.exists():
                shutil.copyfile(CA_BUNDLE, rootfs / CA_BUNDLE.relative_to("/"))
            _trim(rootfs)
            tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
            try:
                _run([*PODMAN, "import", "-", tag], "podman import", stdin=tar.stdout, timeout=900)
            finally:
                if tar.stdout is not None:
                    tar.stdout.close()
                tar.wait()
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if log:
            print(f"base image {tag}: built in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return tag


def build(tag: str, base: str | None = None, log: bool = True) -> str:
    """Build deploy/Dockerfile as ``tag`` on ``base`` (default: the debootstrapped one); returns its id."""
    base = base or ensure_base(log)
    started = time.monotonic()
    argv = [*PODMAN, "build", "--isolation", "chroot", "--network=host", "--format", "docker", "--layers"]
    argv += ["--build-arg", f"PYTHON_IMAGE={base}", "-f", str(DOCKERFILE), "-t", tag, str(ROOT)]
    _run(argv, "podman build", timeout=1800)
    image_id = subprocess.run(
        [*PODMAN, "image", "inspect", "--format", "{{.Id}}", tag], capture_output=True, text=True, check=True
    ).stdout.strip()
    if log:
        print(f"image {tag} ({image_id[:12]}): built in {time.monotonic() - started:.0f} s", file=sys.stderr)
    # Each changed checkout leaves its runtime layers behind as untagged images (the test suite
    # builds one per run); a day of them stays as build cache, older ones of this image go.
    prune = [*PODMAN, "image", "prune", "--force", "--filter", f"label={IMAGE_LABEL}", "--filter", "until=24h"]
    subprocess.run(prune, capture_output=True, timeout=300, check=False)
    return image_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tag", default="agent-gateway:0.1.0", help="the image's name (default %(default)s)")
    parser.add_argument("--base", help="a base image already in podman's store, instead of the debootstrapped one")
    parser.add_argument("--tools", action="store_true", help="only install podman, debootstrap and runc (root, apt)")
    args = parser.parse_args(argv)
    if args.tools:
        still = install_tools()
        for tool, package in TOOLS.items():
            print(f"image tools: {tool}: {'missing' if package in still else 'yes'}")
        return 1 if still else 0
    try:
        build(args.tag, args.base)
    except ImageBuildError as exc:
        print(f"build_image: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
