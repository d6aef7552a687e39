"""gateway/hosts/crewai.py runs inside a crew's own environment: it must not need the gateway."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

HOST = Path(__file__).resolve().parents[2] / "gateway" / "hosts" / "crewai.py"


def test_host_imports_only_the_standard_library_aiohttp_and_lazily_crewai() -> None:
    tree = ast.parse(HOST.read_text())
    top_level = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
        if not (isinstance(node, ast.ImportFrom) and node.module == "__future__")
    }
    assert top_level - set(sys.stdlib_module_names) == {"aiohttp"}
    nested = {
        node.module
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef)
        for node in ast.walk(function)
        if isinstance(node, ast.ImportFrom)
    }
    assert nested == {"crewai"}


def test_importing_the_host_loads_nothing_else_of_the_gateway() -> None:
    # The crew's environment has the checkout on PYTHONPATH, not the gateway's dependencies:
    # the packages on the way (gateway, gateway.hosts) must stay empty of imports too.
    probe = "import sys, gateway.hosts.crewai; print(sorted(m for m in sys.modules if m.split('.')[0] in {'gateway', 'pydantic', 'grpc', 'opentelemetry'}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "['gateway', 'gateway.hosts', 'gateway.hosts.crewai']"
