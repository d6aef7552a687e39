"""The committed generated code must match what the .proto files generate."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(importlib.util.find_spec("grpc_tools") is None, reason="grpcio-tools is a dev dependency")
def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gen_proto
    finally:
        sys.path.pop(0)
    fresh = gen_proto.generate(tmp_path)
    assert fresh, "the generator produced no files"
    stale = []
    for path in fresh:
        relative = path.relative_to(tmp_path)
        committed = ROOT / "proto" / relative
        if not committed.exists() or committed.read_bytes() != path.read_bytes():
            stale.append(str(relative))
    assert not stale, f"generated code is stale, run `make proto`: {stale}"


def test_service_shape() -> None:
    from agentgateway.v1 import gateway_pb2 as pb

    service = pb.DESCRIPTOR.services_by_name["AgentGatewayService"]
    methods = {m.name: m for m in service.methods}
    assert set(methods) == {"Invoke", "InvokeStream", "ListAgents"}
    assert methods["InvokeStream"].server_streaming
    assert not methods["Invoke"].server_streaming
