"""The framework environment builder's contract (no building here)."""

from __future__ import annotations

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
