"""The wire contract: `buf lint` (STANDARD) and `buf breaking` against the last release pass, and the
committed TypeScript stubs are what protoc-gen-es makes of the protos (pinned npm project tests/frameworks/buf)."""

from __future__ import annotations

import filecmp
import subprocess
from pathlib import Path

import pytest

from agentgateway.v1 import gateway_pb2 as pb
from tests.frameworks import envs
from tests.helpers.frameworks import require_env

ROOT = envs.REPO_ROOT
RELEASED = ROOT / "proto" / "released" / "v0.2.0.binpb"


@pytest.fixture(scope="module")
def buf(pytestconfig: pytest.Config) -> Path:
    require_env(pytestconfig, "buf")
    return envs.env_bin("buf", "buf")


def run(buf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(buf), *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def test_buf_lint_standard(buf: Path) -> None:
    done = run(buf, "lint")
    assert done.returncode == 0, done.stdout + done.stderr


def test_buf_breaking_against_the_last_release(buf: Path) -> None:
    assert RELEASED.is_file(), "the released image is the baseline: buf build -o proto/released/<version>.binpb"
    done = run(buf, "breaking", "--against", str(RELEASED))
    assert done.returncode == 0, done.stdout + done.stderr


def test_breaking_changes_are_caught(buf: Path, tmp_path: Path) -> None:
    """A renamed field is what `buf breaking` exists for: it must fail on one."""
    module = tmp_path / "proto"
    for proto in (ROOT / "proto").rglob("*.proto"):
        target = module / proto.relative_to(ROOT / "proto")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(proto.read_text())
    gateway = module / "agentgateway" / "v1" / "gateway.proto"
    gateway.write_text(gateway.read_text().replace("string agent = 1;", "string agent_name = 1;", 1))
    (tmp_path / "buf.yaml").write_text((ROOT / "buf.yaml").read_text())
    done = subprocess.run(
        [str(buf), "breaking", "--against", str(RELEASED)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0 and "agent" in done.stdout


def test_typescript_stubs_are_current(buf: Path, tmp_path: Path) -> None:
    done = run(buf, "generate", "--output", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    fresh = sorted((tmp_path / "proto").rglob("*_pb.ts"))
    assert [p.name for p in fresh] == ["events_pb.ts", "gateway_pb.ts", "runs_pb.ts", "state_pb.ts"]
    stale = [p.name for p in fresh if not filecmp.cmp(p, ROOT / "proto" / p.relative_to(tmp_path / "proto"), shallow=False)]
    assert stale == [], "the TypeScript stubs are stale: run `make proto`"


def test_invoke_and_stream_requests_stay_twins() -> None:
    """InvokeStream parses its request as an InvokeRequest (one request form): their fields must agree."""

    def fields(message: type) -> list[tuple[str, int, int, str]]:
        return [
            (f.name, f.number, f.type, f.message_type.full_name if f.message_type else "")
            for f in message.DESCRIPTOR.fields  # type: ignore[attr-defined]
        ]

    assert fields(pb.InvokeStreamRequest) == fields(pb.InvokeRequest)
