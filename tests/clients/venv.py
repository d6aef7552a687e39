"""A fresh venv holding the client distribution and only what it declares, built offline.

The wheel is built from a copy of clients/python and proto/ with this environment's setuptools
(no build isolation: nothing is downloaded). Its dependencies are copied, file by file as their
RECORDs list them, from the distributions installed here, after checking each version against
the requirement: the venv then holds exactly the declared closure, which `pip check` confirms.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "python"


class Unavailable(Exception):
    """What this environment lacks to build the venv offline."""


@dataclass(frozen=True)
class ClientVenv:
    path: Path
    wheel: Path
    installed: tuple[str, ...]

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


def declared() -> list[str]:
    requirements: list[str] = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]["dependencies"]
    return requirements


def closure(requirements: list[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions ``requirements`` need, transitively (markers and extras followed)."""
    found: dict[str, metadata.Distribution] = {}
    todo = [(Requirement(r), frozenset[str]()) for r in requirements]
    for _ in range(1000):
        if not todo:
            return found
        requirement, extras = todo.pop()
        environments = [{"extra": extra} for extra in ("", *extras)]
        if requirement.marker is not None and not any(requirement.marker.evaluate(e) for e in environments):
            continue
        name = canonicalize_name(requirement.name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise Unavailable(f"{requirement} is not installed here") from None
        if not requirement.specifier.contains(dist.version, prereleases=True):
            raise Unavailable(f"{requirement} is needed, {name} {dist.version} is installed here")
        if name not in found or requirement.extras:
            found[name] = dist
            todo += [(Requirement(r), frozenset(requirement.extras)) for r in dist.requires or []]
    raise Unavailable("the requirements never closed")


def _copy(dist: metadata.Distribution, site: Path) -> None:
    if not dist.files:
        raise Unavailable(f"{dist.metadata['Name']} has no RECORD to copy it by")
    for file in dist.files:
        if file.parts[0] == ".." or file.suffix == ".pyc":  # scripts outside site-packages; bytecode
            continue
        target = site / file
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(str(dist.locate_file(file))), target)


def _run(*argv: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


def build_wheel(work: Path) -> Path:
    try:
        setuptools = metadata.version("setuptools")
    except metadata.PackageNotFoundError:
        raise Unavailable("setuptools is not installed here, to build the wheel without downloading") from None
    # The build-system's lower bound is a need (SPDX license expressions); its upper bound only
    # keeps releases on a known major, so a newer one here still builds the test's wheel.
    if not Requirement("setuptools>=77").specifier.contains(setuptools):
        raise Unavailable(f"the build needs setuptools>=77, {setuptools} is installed here")
    source = work / "src"
    shutil.copytree(CLIENT, source / "clients" / "python", ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    shutil.copytree(ROOT / "proto" / "agentgateway", source / "proto" / "agentgateway", ignore=shutil.ignore_patterns("__pycache__"))
    out = work / "dist"
    script = "import sys; from setuptools import build_meta; print(build_meta.build_wheel(sys.argv[1]))"
    name = _run(sys.executable, "-c", script, out, cwd=source / "clients" / "python").strip().splitlines()[-1]
    return out / name


def make(work: Path) -> ClientVenv:
    """The venv: the built wheel (--no-deps, --no-index) plus its declared closure, nothing else."""
    dists = closure(declared())
    wheel = build_wheel(work)
    venv = work / "venv"
    # No pip of its own: this environment's pip installs into it (--python), so the venv holds the
    # client and its closure only.
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    site = Path(_run(venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip())
    for dist in dists.values():
        _copy(dist, site)
    pip = (sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "--disable-pip-version-check")
    _run(*pip, "install", "-q", "--no-deps", "--no-index", "--no-compile", wheel)
    _run(*pip, "check")
    return ClientVenv(venv, wheel, tuple(sorted(dists)))
