"""Regenerate the Python code for proto/agentgateway/v1/*.proto.

Run: python scripts/gen_proto.py   (or `make proto`)

The generated modules live beside their .proto files so that the proto package
path (agentgateway.v1) is also the Python import path and no import rewriting
is needed. tests/test_proto_codegen.py fails when the committed output is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generate(out_dir: Path) -> list[Path]:
    """Generate into ``out_dir`` (mirroring proto/) and return the files written."""
    protos = sorted(PROTO_ROOT.glob("agentgateway/**/*.proto"))
    include = Path(protoc.__file__).parent / "_proto"  # well-known types shipped with grpcio-tools
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(p) for p in protos],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted(p for p in out_dir.rglob("*") if p.name.endswith(GENERATED_SUFFIXES))


def main() -> None:
    for old in PROTO_ROOT.rglob("*"):
        if old.name.endswith(GENERATED_SUFFIXES):
            old.unlink()
    for path in generate(PROTO_ROOT):
        print(path.relative_to(ROOT))


if __name__ == "__main__":
    sys.exit(main())
