"""Cross-references of a validated config: every name a section uses must be defined somewhere.

Schema validation checks each value alone; this checks the file as a whole (route targets, policies,
workflow steps, checks, triggers, adapter kinds and their options). ``pruned`` names entries that
failed schema validation: they count as defined, so one bad agent does not also make every route to
it a problem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Set

from pydantic import ValidationError

from gateway.config.problems import ConfigProblem, PathKey, ProblemList
from gateway.config.schema import GatewayConfig, HierarchicalWorkflow, ParallelWorkflow, SequentialWorkflow

Pruned = Mapping[str, Set[str]]


def reference_problems(
    config: GatewayConfig,
    file: str,
    lines: Mapping[PathKey, int],
    pruned: Pruned | None = None,
    locate: Callable[[PathKey], PathKey] | None = None,
) -> list[ConfigProblem]:
    """Every cross-reference problem of ``config``, each at its line (``locate``: see :class:`ProblemList`)."""
    pruned = pruned or {}
    out = ProblemList(file, lines, locate)
    agents = {*config.agents, *pruned.get("agents", ())}
    callable_names = {*agents, *config.workflows, *pruned.get("workflows", ()), *(r.match.agent for r in config.routes)}
    _adapter_problems(config, out)
    _route_problems(config, agents, out)
    _workflow_problems(config, callable_names, out)
    _evaluation_problems(config, callable_names, {*config.checks, *pruned.get("checks", ())}, out)
    _policy_problems(config, callable_names, {*config.policies, *pruned.get("policies", ())}, out)
    _trigger_problems(config, callable_names, out)
    _mcp_problems(config, callable_names, {*config.policies, *pruned.get("policies", ())}, out)
    return out.problems


def _adapter_problems(config: GatewayConfig, out: ProblemList) -> None:
    from gateway.adapters.registry import adapter_class, known_kinds  # lazy: only names, no framework imports

    for name, agent in config.agents.items():
        try:
            cls = adapter_class(agent.kind)
        except LookupError:
            out.add(
                ("agents", name, "kind"), f"unknown adapter kind {agent.kind!r} (known: {', '.join(known_kinds())})"
            )
            continue
        try:
            cls.validate_options(agent.options)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                message = error["msg"].removeprefix("Value error, ")
                if error["type"] == "extra_forbidden":
                    message = "unknown key (check the spelling; unknown keys are not ignored)"
                out.add(("agents", name, "options", *error["loc"]), message)


def _route_problems(config: GatewayConfig, agents: Set[str], out: ProblemList) -> None:
    seen: dict[str, int] = {}
    for i, route in enumerate(config.routes):
        if route.name is not None:
            if route.name in seen:
                out.add(("routes", i, "name"), f"duplicate route name {route.name!r} (also routes[{seen[route.name]}])")
            seen.setdefault(route.name, i)
        for j, target in enumerate(route.targets):
            path: PathKey = ("routes", i, "split", j, "agent") if route.split else ("routes", i, "target")
            if target not in agents and target not in config.workflows:
                out.add(path, f"no agent or workflow named {target!r} is defined under 'agents' or 'workflows'")


def _policy_problems(config: GatewayConfig, callable_names: Set[str], policies: Set[str], out: ProblemList) -> None:
    """Policies must exist; fallback agents must be callable."""
    users: list[tuple[PathKey, list[str]]] = [(("agents", n, "policies"), a.policies) for n, a in config.agents.items()]
    users += [(("routes", i, "policies"), r.policies) for i, r in enumerate(config.routes)]
    users += [(("workflows", n, "policies"), w.policies) for n, w in config.workflows.items()]
    for path, names in users:
        for j, name in enumerate(names):
            if name not in policies:
                out.add((*path, j), f"no policy named {name!r} is defined under 'policies'")
    for name, spec in config.policies.items():
        for j, target in enumerate(spec.fallback.targets if spec.fallback else []):
            if target.agent is not None and target.agent not in callable_names:
                out.add(
                    ("policies", name, "fallback", "targets", j, "agent"),
                    f"{target.agent!r} is not an agent, a route or a workflow",
                )


def _trigger_problems(config: GatewayConfig, callable_names: Set[str], out: ProblemList) -> None:
    """Triggers must invoke something callable, on subjects under the bus prefixes."""
    prefixes = config.bus.prefixes
    under_prefix = f"the subject must start with one of bus.prefixes {prefixes}"
    for i, route in enumerate(config.routes):
        if route.publish is not None and route.publish.split(".", 1)[0] not in prefixes:
            out.add(("routes", i, "publish"), under_prefix)
    for i, trigger in enumerate(config.triggers):
        if trigger.agent not in callable_names:
            out.add(("triggers", i, "agent"), f"{trigger.agent!r} is not an agent, a route or a workflow")
        if trigger.subject.split(".", 1)[0] not in (*prefixes, config.bus.dead_letter_prefix):
            out.add(("triggers", i, "subject"), under_prefix)
        if trigger.publish is not None and trigger.publish.split(".", 1)[0] not in prefixes:
            out.add(("triggers", i, "publish"), under_prefix)


def _evaluation_problems(config: GatewayConfig, targets: Set[str], checks: Set[str], out: ProblemList) -> None:
    from gateway.checks import check_config_problem  # lazy: jsonschema loads only when used

    for name, check in config.checks.items():
        if check.kind == "judge" and check.agent not in targets:
            out.add(("checks", name, "agent"), f"the judge {check.agent!r} is not an agent, a route or a workflow")
        elif (reason := check_config_problem(check)) is not None:
            out.add(("checks", name), reason)
    for i, evaluation in enumerate(config.evaluations):
        if evaluation.target not in targets:
            out.add(("evaluations", i, "target"), f"{evaluation.target!r} is not an agent, a route or a workflow")
        named: list[tuple[PathKey, str]] = [
            (("evaluations", i, "checks", j), c) for j, c in enumerate(evaluation.checks)
        ]
        named += [
            (("evaluations", i, "steps", step, j), c) for step, cs in evaluation.steps.items() for j, c in enumerate(cs)
        ]
        for path, check_name in named:
            if check_name not in checks:
                out.add(path, f"no check named {check_name!r} is defined under 'checks'")


def _workflow_problems(config: GatewayConfig, callable_names: Set[str], out: ProblemList) -> None:
    """Workflow steps must name something callable; workflow names must not shadow agents."""

    def check(name: str, path: PathKey) -> None:
        if name not in callable_names:
            out.add(path, f"{name!r} is not an agent, a route or a workflow")

    for wf_name, workflow in config.workflows.items():
        base: PathKey = ("workflows", wf_name)
        if wf_name in config.agents:
            out.add(base, f"a workflow cannot have the name of agent {wf_name!r}")
        if isinstance(workflow, SequentialWorkflow):
            for i, step in enumerate(workflow.steps):
                if step.agent is not None:
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


def _mcp_problems(config: GatewayConfig, callable_names: Set[str], policies: Set[str], out: ProblemList) -> None:
    """Virtual servers name defined upstreams and callable agents; upstream policies exist."""
    upstreams = config.mcp.upstreams
    for name, upstream in upstreams.items():
        for j, policy in enumerate(upstream.policies):
            if policy not in policies:
                out.add(
                    ("mcp", "upstreams", name, "policies", j), f"no policy named {policy!r} is defined under 'policies'"
                )
    for name, server in config.mcp.virtual_servers.items():
        for i, member in enumerate(server.upstreams):
            if member.upstream not in upstreams:
                out.add(
                    ("mcp", "virtual_servers", name, "upstreams", i, "upstream"),
                    f"no MCP upstream named {member.upstream!r} is defined under 'mcp.upstreams'",
                )
        spoken = [set(upstreams[m.upstream].versions) for m in server.upstreams if m.upstream in upstreams]
        if spoken and not set.intersection(*spoken):
            out.add(
                ("mcp", "virtual_servers", name, "upstreams"),
                "these upstreams share no MCP revision (their 'versions'): the server could serve no client",
            )
        for i, agent in enumerate(server.agents):
            if agent not in callable_names:
                out.add(
                    ("mcp", "virtual_servers", name, "agents", i), f"{agent!r} is not an agent, a route or a workflow"
                )
