"""One virtualenv per framework test server, built from the repository's own files.

Framework servers have heavy, conflicting dependencies (CrewAI alone is about
1 GB and pins pydantic<2.13), so each runs in ``.venvs/<framework>/`` built
from the pinned ``tests/frameworks/<framework>/requirements.txt``. A stamp
file holds the hash of that file (and of the Python version): an unchanged
environment is reused, a changed one is rebuilt from scratch.

    python -m tests.frameworks.envs            # build every environment (make frameworks)
    python -m tests.frameworks.envs crewai     # build one
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

FRAMEWORKS_DIR = Path(__file__).resolve().parent
REPO_ROOT = FRAMEWORKS_DIR.parents[1]
VENVS_DIR = REPO_ROOT / ".venvs"
# Frameworks whose server needs its own environment (A2A runs on the dev extra's a2a-sdk).
FRAMEWORKS = ("langgraph", "crewai")
DEFAULT_TIMEOUT = 900.0
STAMP_NAME = ".requirements.sha256"


class EnvUnavailable(Exception):
    """The environment could not be built (typically: no network to install from)."""


def requirements_file(framework: str) -> Path:
    return FRAMEWORKS_DIR / framework / "requirements.txt"


def venv_dir(framework: str) -> Path:
    return VENVS_DIR / framework


def env_bin(framework: str, name: str) -> Path:
    """An executable inside the framework's environment (python, langgraph, ...)."""
    return venv_dir(framework) / "bin" / name


def requirements_digest(framework: str) -> str:
    digest = hashlib.sha256(requirements_file(framework).read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def is_current(framework: str) -> bool:
    stamp = venv_dir(framework) / STAMP_NAME
    return (
        stamp.is_file()
        and stamp.read_text().strip() == requirements_digest(framework)
        and env_bin(framework, "python").exists()
    )


def _run(argv: list[str], timeout: float, what: str) -> None:
    try:
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
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


def main(argv: list[str]) -> int:
    frameworks = argv or list(FRAMEWORKS)
    failed = False
    for framework in frameworks:
        if framework not in FRAMEWORKS:
            print(f"unknown framework {framework!r}; known: {', '.join(FRAMEWORKS)}", file=sys.stderr)
            return 2
        try:
            python = ensure_env(framework)
        except EnvUnavailable as exc:
            print(f"{framework}: {exc}", file=sys.stderr)
            failed = True
        else:
            print(f"{framework}: ready ({python.relative_to(REPO_ROOT)})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
