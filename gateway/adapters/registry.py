"""Adapter kinds by name. Imports are lazy so a framework's adapter costs
nothing until a config uses it; third-party adapters register through the
``agent_gateway.adapters`` entry-point group.

``BUILTIN`` is the one list of built-in kinds: the config's ``agents.<name>.kind`` accepts these
and the entry points (checked in config/references.py, whose error names the known kinds), and
nothing else lists them, so adding an adapter is its module, one line here and its tests.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from gateway.adapters.base import Adapter

BUILTIN: dict[str, str] = {
    "http": "gateway.adapters.http:HttpAgentAdapter",
    "grpc": "gateway.adapters.grpc:GrpcAgentAdapter",
    "langgraph": "gateway.adapters.langgraph:LangGraphAdapter",
    "crewai": "gateway.adapters.crewai:CrewAIAdapter",
    "a2a": "gateway.adapters.a2a:A2AAdapter",
    "mastra": "gateway.adapters.mastra:MastraAdapter",
    "mcp": "gateway.adapters.mcp:McpToolAdapter",
}


def known_kinds() -> list[str]:
    return sorted({*BUILTIN, *(ep.name for ep in entry_points(group="agent_gateway.adapters"))})


def adapter_class(kind: str) -> type[Adapter]:
    """The adapter class for ``kind``; LookupError when no adapter has that name."""
    target = BUILTIN.get(kind)
    if target is None:
        found = [ep for ep in entry_points(group="agent_gateway.adapters") if ep.name == kind]
        if not found:
            raise LookupError(kind)
        target = found[0].value
    module_name, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise TypeError(f"{target} is not an Adapter subclass")
    return cls
