"""YAML -> :class:`GatewayConfig`, with errors that name the file, line and path.

PyYAML's node tree keeps the position of every value; we build plain Python
data from it while remembering where each path came from, then let pydantic
validate. Each pydantic error location is mapped back to a line, so a user
reads ``routes.yaml:14: routes[1].split[0].weight: Input should be ...``.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.config.problems import ConfigError, ConfigProblem, PathKey, ProblemList, format_path, line_for
from gateway.config.references import reference_problems
from gateway.config.schema import GatewayConfig
from gateway.config.workers import worker_problems

__all__ = ["ConfigError", "ConfigProblem", "load_config", "load_config_text", "parse_yaml"]

_ENV = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")
# A gateway config nests about ten levels; PyYAML composes (and we build) recursively.
MAX_DEPTH = 64
# Values after aliases are expanded: a kilobyte of nested aliases ("billion laughs")
# would otherwise expand to 10^9 of them. Real configs hold a few thousand.
MAX_NODES = 200_000
# Sections whose entries are validated apart: a bad entry is set aside so the rest is still checked.
_KEYED_SECTIONS = ("agents", "policies", "workflows", "checks")
_LISTED_SECTIONS = ("routes", "evaluations", "triggers")
# Each pass sets aside at least one bad part; a file has only so many sections.
_MAX_PASSES = 16
# Marks a list entry set aside; None cannot, since YAML may hold a null entry the schema must see.
_HOLE = object()


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing to compose nodes nested deeper than MAX_DEPTH
    (its composer recurses once per level: 5,000 would be a RecursionError)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self._depth >= MAX_DEPTH:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep", mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Builder:
    """Turns a YAML node tree into data, recording each path's line; aliases are
    expanded within MAX_NODES and MAX_DEPTH, and an alias inside its own anchor is refused."""

    def __init__(self, file: str, environ: Mapping[str, str]) -> None:
        self.file = file
        self.environ = environ
        self.lines: dict[PathKey, int] = {}
        self.problems: list[ConfigProblem] = []
        self._nodes = 0
        self._open: set[int] = set()  # the collection nodes being built (a cycle comes back to one)
        # One constructor for every scalar (it caches per node: an alias repeats for free).
        self._scalars = yaml.SafeLoader("")

    def _refuse(self, node: yaml.Node, path: PathKey, message: str) -> ConfigError:
        return ConfigError([ConfigProblem(self.file, node.start_mark.line + 1, format_path(path), message)])

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise self._refuse(node, path, f"more than {MAX_NODES} values once aliases are expanded (an alias bomb?)")
        if len(path) > MAX_DEPTH:
            raise self._refuse(node, path, f"nested more than {MAX_DEPTH} levels deep once aliases are expanded")
        if isinstance(node, yaml.CollectionNode):
            if id(node) in self._open:
                raise self._refuse(node, path, "a recursive alias: this anchor's value contains an alias to itself")
            self._open.add(id(node))
            try:
                return self._build_collection(node, path)
            finally:
                self._open.discard(id(node))
        return self._build_scalar(node, path)

    def _build_collection(self, node: yaml.CollectionNode, path: PathKey) -> Any:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                try:
                    key = self._construct(key_node) if isinstance(key_node, yaml.ScalarNode) else None
                except yaml.YAMLError:
                    key = None
                if isinstance(key, bool):  # YAML 1.1 reads on/off/yes/no as booleans
                    self._problem(key_node, path, f"the key {key_node.value!r} reads as a boolean in YAML; quote it")
                    continue
                if not isinstance(key, str | int):
                    self._problem(key_node, path, "mapping keys must be strings")
                    continue
                key = str(key)
                if key in out:
                    self._problem(key_node, (*path, key), "duplicate key (YAML would silently keep the last)")
                out[key] = self.build(value_node, (*path, key))
                self.lines[(*path, key)] = key_node.start_mark.line + 1  # the key names the path best
            return out
        return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]

    def _build_scalar(self, node: yaml.Node, path: PathKey) -> Any:
        self.lines[path] = node.start_mark.line + 1
        assert isinstance(node, yaml.ScalarNode)
        if node.tag == "tag:yaml.org,2002:str" and "$" in node.value:
            return self._substitute(node, path)
        try:
            return self._construct(node)
        except yaml.YAMLError as exc:  # e.g. a bare "=" (YAML's value tag) or an unknown !tag
            problem = getattr(exc, "problem", None) or str(exc)
            self._problem(node, path, f"cannot read this value: {problem}")
            return None

    def _construct(self, node: yaml.ScalarNode) -> Any:
        return self._scalars.construct_object(node, deep=True)

    def _substitute(self, node: yaml.ScalarNode, path: PathKey) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if name in self.environ:
                return self.environ[name]
            if default is not None:
                return default
            self._problem(
                node, path, f"environment variable {name} is not set (use ${{{name}:-default}} for a default)"
            )
            return ""

        return _ENV.sub(replace, node.value)

    def _problem(self, node: yaml.Node, path: PathKey, message: str) -> None:
        self.problems.append(ConfigProblem(self.file, node.start_mark.line + 1, format_path(path), message))


def parse_yaml(text: str, file: str, environ: Mapping[str, str] | None = None) -> tuple[Any, _Builder]:
    builder = _Builder(file, os.environ if environ is None else environ)
    try:
        node = yaml.compose(text, Loader=_BoundedLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError([ConfigProblem(file, line, "", f"invalid YAML: {exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigProblem(file, None, "", f"invalid YAML: {exc}")]) from None
    if node is None:
        return {}, builder
    return builder.build(node, ()), builder


def _data_path(data: Any, loc: Sequence[str | int]) -> PathKey:
    """The part of a pydantic location that names data: union tags (``sequential``)
    and validator names (``function-after[...]``) are not keys of the document."""
    path: list[str | int] = []
    node = data
    for key in loc:
        if isinstance(key, str) and key.startswith("function-"):
            continue
        in_dict = isinstance(node, dict) and key in node
        in_list = isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node)
        if in_dict or in_list:
            node = node[key]
        elif isinstance(node, dict) and key == node.get("kind"):
            continue
        else:
            node = None  # a missing or unknown key: still worth naming
        path.append(key)
    return tuple(path)


def _problems_of(
    errors: Sequence[Any], locations: Sequence[PathKey], file: str, lines: Mapping[PathKey, int]
) -> list[ConfigProblem]:
    problems = []
    for error, loc in zip(errors, locations, strict=True):
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; unknown keys are not ignored)"
        problems.append(ConfigProblem(file, line_for(lines, loc), format_path(loc), message))
    return problems


def _set_aside(data: dict[str, Any], locations: Sequence[PathKey], pruned: dict[str, set[str]]) -> bool:
    """Remove the smallest section entries holding ``locations``; False when nothing could be removed."""
    removed = False
    for loc in locations:
        if not loc or not isinstance(section := data.get(str(loc[0])), dict | list):
            continue
        name = str(loc[0])
        if len(loc) > 1 and name in _KEYED_SECTIONS and isinstance(section, dict) and loc[1] in section:
            del section[loc[1]]
            pruned.setdefault(name, set()).add(str(loc[1]))
        elif len(loc) > 1 and name in _LISTED_SECTIONS and isinstance(section, list) and isinstance(loc[1], int):
            if 0 <= loc[1] < len(section) and section[loc[1]] is not _HOLE:
                section[loc[1]] = _HOLE  # a hole keeps the later entries' indexes (and lines); dropped below
            else:
                continue
        else:
            del data[name]  # a settings section: its defaults stand in while the rest is checked
        removed = True
    return removed


def _validate(
    data: dict[str, Any], file: str, lines: Mapping[PathKey, int]
) -> tuple[GatewayConfig | None, list[ConfigProblem]]:
    """The config, or every schema and cross-reference problem of the document, however many there are."""
    problems: list[ConfigProblem] = []
    pruned: dict[str, set[str]] = {}
    work = {k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for _ in range(_MAX_PASSES):
        holes = {
            name: [i for i, entry in enumerate(work[name]) if entry is _HOLE]
            for name in _LISTED_SECTIONS
            if isinstance(work.get(name), list)
        }
        candidate = {k: ([e for e in v if e is not _HOLE] if k in holes else v) for k, v in work.items()}
        try:
            config = GatewayConfig.model_validate(candidate)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            locations = [_original_index(_data_path(candidate, e["loc"]), holes) for e in errors]
            problems.extend(_problems_of(errors, locations, file, lines))
            if not _set_aside(work, locations, pruned):
                return None, problems
            continue
        locate = functools.partial(_original_index, holes=holes)
        problems += reference_problems(config, file, lines, pruned, locate)
        workers = ProblemList(file, lines, locate)
        worker_problems(config, workers)
        problems += workers.problems
        return (None if problems else config), problems
    return None, problems


def _original_index(loc: PathKey, holes: Mapping[str, list[int]]) -> PathKey:
    """A location in the compacted document -> the same entry's location in the file."""
    if len(loc) > 1 and isinstance(loc[1], int) and str(loc[0]) in holes:
        index = loc[1]
        for hole in holes[str(loc[0])]:
            if hole <= index:
                index += 1
        return (loc[0], index, *loc[2:])
    return loc


def _override(data: dict[str, Any], overrides: Mapping[tuple[str, ...], Any]) -> None:
    """Set values given outside the file (``--workers``) before validation, so every check sees them."""
    for path, value in overrides.items():
        node = data
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[path[-1]] = value


def load_config_text(
    text: str,
    file: str = "<config>",
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[tuple[str, ...], Any] | None = None,
) -> GatewayConfig:
    """Parse and validate YAML text; raise :class:`ConfigError` listing every problem of the file.
    ``overrides`` (path -> value, e.g. ``{("server", "workers"): 2}``) replace what the file says."""
    data, builder = parse_yaml(text, file, environ)
    if not isinstance(data, dict):
        problem = ConfigProblem(file, 1, "", "the top level must be a mapping (listeners, agents, routes)")
        raise ConfigError([*builder.problems, problem])
    if overrides:
        _override(data, overrides)
    config, problems = _validate(data, file, builder.lines)
    if builder.problems or config is None:
        raise ConfigError(builder.problems + problems)
    return config


def load_config(
    path: str | Path,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[tuple[str, ...], Any] | None = None,
) -> GatewayConfig:
    """Load a gateway YAML file; raise :class:`ConfigError` naming file, line, path and reason."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem(file, None, "", f"cannot read the file: {exc.strerror}")]) from None
    return load_config_text(text, file, environ, overrides)
