"""The framework environment builder's contract (no building here)."""

from __future__ import annotations

import json

import pytest

from tests.frameworks import envs


def test_a_framework_without_pinned_requirements_is_unavailable_with_the_reason() -> None:
    with pytest.raises(envs.EnvUnavailable, match="no pinned requirements"):
        envs.ensure_env("no-such-framework", log=lambda line: None)


def test_every_framework_pins_exact_versions() -> None:
    for framework in envs.FRAMEWORKS:
        lines = [line for line in envs.requirements_file(framework).read_text().splitlines()
                 if line.strip() and not line.startswith("#")]
        assert lines, framework
        assert all("==" in line for line in lines), framework
        assert envs.requirements_digest(framework) == envs.requirements_digest(framework)


def test_the_npm_project_pins_exact_versions_and_locks_them_without_registry_urls() -> None:
    for project in envs.NODE_PROJECTS:
        manifest = json.loads((envs.FRAMEWORKS_DIR / project / "package.json").read_text())
        pinned = {**manifest.get("dependencies", {}), **manifest.get("optionalDependencies", {})}
        assert pinned, project
        assert all(version[0].isdigit() for version in pinned.values()), pinned  # no ranges, no tags
        lock = json.loads(envs.requirements_file(project).read_text())
        root = lock["packages"][""]
        assert {**root.get("dependencies", {}), **root.get("optionalDependencies", {})} == pinned
        # Integrity hashes, no `resolved` URLs: npm ci fetches from whatever registry is configured.
        entries = [entry for path, entry in lock["packages"].items() if path]
        assert all("resolved" not in entry for entry in entries)
        assert all("integrity" in entry for entry in entries if not entry.get("link"))
        assert envs.venv_dir(project) == envs.FRAMEWORKS_DIR / project / "node_modules"


def test_an_unknown_framework_is_refused_by_the_builder_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert envs.main(["no-such-framework"]) == 2
    assert "known: langgraph, crewai, pydantic_ai, adk, mastra" in capsys.readouterr().err
