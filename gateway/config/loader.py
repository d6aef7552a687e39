"""YAML -> :class:`GatewayConfig`, with errors that name the file, line and path.

PyYAML's node tree keeps the position of every value; we build plain Python
data from it while remembering where each path came from, then let pydantic
validate. Each pydantic error location is mapped back to a line, so a user
reads ``routes.yaml:14: routes[1].split[0].weight: Input should be ...``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.config.schema import GatewayConfig

PathKey = tuple[str | int, ...]
_ENV = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")
# A gateway config nests about ten levels; PyYAML composes (and we build) recursively.
MAX_DEPTH = 64
# Values after aliases are expanded: a kilobyte of nested aliases ("billion laughs")
# would otherwise expand to 10^9 of them. Real configs hold a few thousand.
MAX_NODES = 200_000


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """Raised when a config file cannot be loaded; lists every problem found."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def format_path(path: PathKey) -> str:
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out


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


def _line_for(lines: Mapping[PathKey, int], path: PathKey) -> int | None:
    # Fall back to the nearest enclosing path: a missing key is reported at its parent.
    for end in range(len(path), -1, -1):
        if (line := lines.get(path[:end])) is not None:
            return line
    return None


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


def _pydantic_problems(exc: ValidationError, file: str, lines: Mapping[PathKey, int], data: Any) -> list[ConfigProblem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = _data_path(data, error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; unknown keys are not ignored)"
        problems.append(ConfigProblem(file, _line_for(lines, loc), format_path(loc), message))
    return problems


def _reference_problems(config: GatewayConfig, file: str, lines: Mapping[PathKey, int]) -> list[ConfigProblem]:
    from adapters.registry import adapter_class, known_kinds  # lazy: only names, no framework imports

    problems = []
    for name, agent in config.agents.items():
        path: PathKey = ("agents", name, "kind")
        try:
            cls = adapter_class(agent.kind)
        except LookupError:
            kinds = ", ".join(known_kinds())
            problems.append(
                ConfigProblem(
                    file,
                    _line_for(lines, path),
                    format_path(path),
                    f"unknown adapter kind {agent.kind!r} (known: {kinds})",
                )
            )
            continue
        try:
            cls.validate_options(agent.options)
        except ValidationError as exc:
            for p in _pydantic_problems(exc, file, {}, dict(agent.options)):
                opt_path: PathKey = ("agents", name, "options", *[k for k in p.path.split(".") if k])
                problems.append(ConfigProblem(file, _line_for(lines, opt_path), format_path(opt_path), p.message))
    for i, route in enumerate(config.routes):
        for j, target in enumerate(route.targets):
            path = ("routes", i, "split", j, "agent") if route.split else ("routes", i, "target")
            if target not in config.agents:
                problems.append(
                    ConfigProblem(
                        file,
                        _line_for(lines, path),
                        format_path(path),
                        f"no agent named {target!r} is defined under 'agents'",
                    )
                )
    problems.extend(_workflow_problems(config, file, lines))
    problems.extend(_evaluation_problems(config, file, lines))
    problems.extend(_policy_problems(config, file, lines))
    problems.extend(_trigger_problems(config, file, lines))
    return problems


def _policy_problems(config: GatewayConfig, file: str, lines: Mapping[PathKey, int]) -> list[ConfigProblem]:
    """Policies must exist; fallback agents must be callable."""
    callable_names = {*config.agents, *config.workflows, *(r.match.agent for r in config.routes)}
    problems = []

    def problem(path: PathKey, message: str) -> None:
        problems.append(ConfigProblem(file, _line_for(lines, path), format_path(path), message))

    users: list[tuple[PathKey, list[str]]] = [(("agents", n, "policies"), a.policies) for n, a in config.agents.items()]
    users += [(("routes", i, "policies"), r.policies) for i, r in enumerate(config.routes)]
    for path, names in users:
        for j, name in enumerate(names):
            if name not in config.policies:
                problem((*path, j), f"no policy named {name!r} is defined under 'policies'")
    for name, spec in config.policies.items():
        for j, target in enumerate(spec.fallback.targets if spec.fallback else []):
            if target.agent is not None and target.agent not in callable_names:
                problem(
                    ("policies", name, "fallback", "targets", j, "agent"),
                    f"{target.agent!r} is not an agent, a route or a workflow",
                )
    return problems


def _trigger_problems(config: GatewayConfig, file: str, lines: Mapping[PathKey, int]) -> list[ConfigProblem]:
    """Triggers must invoke something callable, on subjects under the bus prefixes."""
    callable_names = {*config.agents, *config.workflows, *(r.match.agent for r in config.routes)}
    prefixes = config.bus.prefixes
    problems = []

    def problem(path: PathKey, message: str) -> None:
        problems.append(ConfigProblem(file, _line_for(lines, path), format_path(path), message))

    for i, route in enumerate(config.routes):
        if route.publish is not None and route.publish.split(".", 1)[0] not in prefixes:
            problem(("routes", i, "publish"), f"the subject must start with one of bus.prefixes {prefixes}")
    for i, trigger in enumerate(config.triggers):
        if trigger.agent not in callable_names:
            problem(("triggers", i, "agent"), f"{trigger.agent!r} is not an agent, a route or a workflow")
        if trigger.subject.split(".", 1)[0] not in (*prefixes, config.bus.dead_letter_prefix):
            problem(("triggers", i, "subject"), f"the subject must start with one of bus.prefixes {prefixes}")
        if trigger.publish is not None and trigger.publish.split(".", 1)[0] not in prefixes:
            problem(("triggers", i, "publish"), f"the subject must start with one of bus.prefixes {prefixes}")
    return problems


def _evaluation_problems(config: GatewayConfig, file: str, lines: Mapping[PathKey, int]) -> list[ConfigProblem]:
    from gateway.evals.checks import check_config_problem  # lazy: jsonschema loads only when used

    targets = {*config.agents, *config.workflows, *(r.match.agent for r in config.routes)}
    problems = []

    def problem(path: PathKey, message: str) -> None:
        problems.append(ConfigProblem(file, _line_for(lines, path), format_path(path), message))

    for name, check in config.checks.items():
        if check.kind == "judge" and check.agent not in targets:
            problem(("checks", name, "agent"), f"the judge {check.agent!r} is not an agent, a route or a workflow")
        elif (reason := check_config_problem(check)) is not None:
            problem(("checks", name), reason)
    for i, evaluation in enumerate(config.evaluations):
        if evaluation.target not in targets:
            problem(("evaluations", i, "target"), f"{evaluation.target!r} is not an agent, a route or a workflow")
        named: list[tuple[PathKey, str]] = [
            (("evaluations", i, "checks", j), c) for j, c in enumerate(evaluation.checks)
        ]
        named += [
            (("evaluations", i, "steps", step, j), c) for step, cs in evaluation.steps.items() for j, c in enumerate(cs)
        ]
        for path, check_name in named:
            if check_name not in config.checks:
                problem(path, f"no check named {check_name!r} is defined under 'checks'")
    return problems


def _workflow_problems(config: GatewayConfig, file: str, lines: Mapping[PathKey, int]) -> list[ConfigProblem]:
    """Workflow steps must name something callable; workflow names must not shadow agents."""
    from gateway.config.schema import HierarchicalWorkflow, ParallelWorkflow, SequentialWorkflow

    callable_names = {*config.agents, *config.workflows, *(r.match.agent for r in config.routes)}
    problems = []

    def check(name: str, path: PathKey) -> None:
        if name not in callable_names:
            problems.append(
                ConfigProblem(
                    file, _line_for(lines, path), format_path(path), f"{name!r} is not an agent, a route or a workflow"
                )
            )

    for wf_name, workflow in config.workflows.items():
        base: PathKey = ("workflows", wf_name)
        if wf_name in config.agents:
            problems.append(
                ConfigProblem(
                    file,
                    _line_for(lines, base),
                    format_path(base),
                    f"a workflow cannot have the name of agent {wf_name!r}",
                )
            )
        if isinstance(workflow, SequentialWorkflow):
            for i, step in enumerate(workflow.steps):
                check(step.agent, (*base, "steps", i, "agent"))
                if step.compensate is not None:
                    check(step.compensate.agent, (*base, "steps", i, "compensate", "agent"))
        elif isinstance(workflow, ParallelWorkflow):
            for i, branch in enumerate(workflow.branches):
                check(branch.agent, (*base, "branches", i, "agent"))
        elif isinstance(workflow, HierarchicalWorkflow):
            check(workflow.manager, (*base, "manager"))
            for i, worker in enumerate(workflow.workers):
                check(worker, (*base, "workers", i))
    return problems


def load_config_text(text: str, file: str = "<config>", environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """Parse and validate YAML text; raise :class:`ConfigError` listing every problem."""
    data, builder = parse_yaml(text, file, environ)
    if builder.problems:
        raise ConfigError(builder.problems)
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(file, 1, "", "the top level must be a mapping (listeners, agents, routes)")])
    try:
        config = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_pydantic_problems(exc, file, builder.lines, data)) from None
    if problems := _reference_problems(config, file, builder.lines):
        raise ConfigError(problems)
    return config


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """Load a gateway YAML file; raise :class:`ConfigError` naming file, line, path and reason."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem(file, None, "", f"cannot read the file: {exc.strerror}")]) from None
    return load_config_text(text, file, environ)
