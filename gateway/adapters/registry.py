"""Adapter kinds by name. Imports are lazy so a framework's adapter costs
nothing until a config uses it; third-party adapters register through the
``agent_gateway.adapters`` entry-point group.

This table is the one list of built-in kinds: the config's `agents.<name>.kind` accepts
these and the entry points (config/references.py), and the config reference lists them.
Adding an adapter is its module, one line here and its tests.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from gateway.adapters.base import Adapter


class Kind(NamedTuple):
    # "module:Class", imported when a config first uses the kind.
    target: str
    # Shown beside the kind in the config reference, when the name alone says too little.
    note: str = ""


BUILTIN: dict[str, Kind] = {
    "http": Kind("gateway.adapters.http:HttpAgentAdapter"),
    "grpc": Kind("gateway.adapters.grpc:GrpcAgentAdapter"),
    "langgraph": Kind("gateway.adapters.langgraph:LangGraphAdapter"),
    "crewai": Kind("gateway.adapters.crewai:CrewAIAdapter"),
    "mastra": Kind("gateway.adapters.mastra:MastraAdapter"),
    "a2a": Kind("gateway.adapters.a2a:A2AAdapter"),
    "mcp": Kind("gateway.adapters.mcp:McpToolAdapter", "one MCP tool"),
}


def builtin_kinds_text() -> str:
    """The built-in kinds for people: ``http, grpc, ..., mcp (one MCP tool)``."""
    return ", ".join(f"{name} ({kind.note})" if kind.note else name for name, kind in BUILTIN.items())


def known_kinds() -> list[str]:
    return sorted({*BUILTIN, *(ep.name for ep in entry_points(group="agent_gateway.adapters"))})


def adapter_class(kind: str) -> type[Adapter]:
    """The adapter class for ``kind``; LookupError when no adapter has that name."""
    from gateway.adapters.base import Adapter  # lazy: the kinds' names cost no aiohttp import

    builtin = BUILTIN.get(kind)
    if builtin is not None:
        target = builtin.target
    else:
        found = [ep for ep in entry_points(group="agent_gateway.adapters") if ep.name == kind]
        if not found:
            raise LookupError(kind)
        target = found[0].value
    module_name, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise TypeError(f"{target} is not an Adapter subclass")
    return cls
