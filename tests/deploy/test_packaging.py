"""The package's own metadata: it builds without deprecation warnings and lists each dependency once."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# The client's own distribution (agent-gateway-client), built from the same repository.
CLIENT = ROOT / "clients" / "python"


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


@pytest.mark.parametrize("project", [ROOT, CLIENT], ids=["agent-gateway", "agent-gateway-client"])
def test_metadata_builds_with_warnings_as_errors(tmp_path: Path, project: Path) -> None:
    # Setuptools warns (and will refuse after 2027-02-18) about table-style licenses; -W error makes any
    # such deprecation fail here instead of in a user's build.
    script = (
        "import sys; from setuptools import build_meta; "
        "print(build_meta.prepare_metadata_for_build_wheel(sys.argv[1]))"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error::Warning", "-c", script, str(tmp_path)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    metadata = (tmp_path / done.stdout.strip().splitlines()[-1] / "METADATA").read_text()
    assert "License-Expression: Apache-2.0" in metadata


def test_build_backend_is_bounded() -> None:
    (backend,) = [r for r in PYPROJECT["build-system"]["requires"] if _name(r) == "setuptools"]
    assert ">=77" in backend, "SPDX license expressions need setuptools 77"
    assert "<" in backend, "bound the build backend's major version"


def test_each_dependency_listed_once() -> None:
    names = [_name(r) for r in PYPROJECT["project"]["dependencies"] if ";" not in r or "extra" not in r]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert duplicates == []
    for extra, requirements in PYPROJECT["project"]["optional-dependencies"].items():
        extra_names = [_name(r) for r in requirements]
        assert sorted({n for n in extra_names if extra_names.count(n) > 1}) == [], extra
