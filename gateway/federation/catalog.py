"""A virtual server's merged lists: which lists there are, which call uses which, and how a member's
item is exposed (allow/deny, name prefixes, resource templates)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from gateway.config.schema import McpMember

# list method -> (item key, the field naming an item)
KINDS = {
    "tools/list": ("tools", "name"),
    "prompts/list": ("prompts", "name"),
    "resources/list": ("resources", "uri"),
    "resources/templates/list": ("resourceTemplates", "uriTemplate"),
}
# named call -> the list naming what it calls
CALLS = {"tools/call": "tools/list", "prompts/get": "prompts/list", "resources/read": "resources/list"}


@dataclass(frozen=True, slots=True)
class Entry:
    """An exposed name and where it goes."""

    upstream: str
    original: str
    item: Mapping[str, Any]


def allowed(member: McpMember, item: Mapping[str, Any], name_field: str) -> bool:
    """Allow/deny patterns match a name, or a resource's URI or its name."""
    keys = {str(item[name_field]), *([str(item["name"])] if isinstance(item.get("name"), str) else [])}
    if member.allow and not any(fnmatchcase(k, p) for k in keys for p in member.allow):
        return False
    return not any(fnmatchcase(k, p) for k in keys for p in member.deny)


def expose(member: McpMember, original: str, name_field: str) -> str:
    """The name (or URI) under which a virtual server lists ``member``'s item ``original``."""
    if name_field == "name":
        return member.name_prefix + original
    # URIs keep their shape: the prefix goes in front as a scheme-like tag only when set.
    return f"{member.name_prefix.rstrip('_')}+{original}" if member.name_prefix else original


def match_template(templates: Mapping[str, Entry], exposed: str) -> Entry | None:
    """The entry of a resource URI matched by one of the exposed (level 1, RFC 6570) resource templates."""
    for exposed_template, entry in templates.items():
        pattern = "".join(
            "[^/]+" if part.startswith("{") else re.escape(part) for part in re.split(r"(\{[^}]*\})", exposed_template)
        )
        if re.fullmatch(pattern, exposed):
            prefix = exposed_template[: len(exposed_template) - len(entry.original)]
            return Entry(entry.upstream, exposed[len(prefix) :], entry.item)
    return None
