"""The plan: everything one configuration builds (adapters, chains, routes, workflows, checks).

It is immutable once built, so a reload is one swap of the gateway's plan: a call holds the plan
it started with, new calls take the new one. Nothing awaits while a plan is built, so no call
ever sees half a configuration, and a failed build leaves the running plan untouched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from opentelemetry import trace
from opentelemetry.trace import Tracer

from gateway.adapters.base import Adapter, AdapterResources
from gateway.adapters.registry import adapter_class
from gateway.checks import Judge, build_check
from gateway.config.schema import GatewayConfig, Route
from gateway.evals.online import EvaluationPolicy, EvaluationRecorder, Evaluator
from gateway.model import AgentSpec, Event, Invocation, Result, UpstreamTls, evolve
from gateway.patterns.build import build_pattern
from gateway.patterns.durable import DurableWorkflows
from gateway.patterns.run import Caller, WorkflowRunner
from gateway.pipeline.attempt import AttemptHandler
from gateway.policies.base import Handler, Policy, StreamHandler, compose
from gateway.policies.build import DEFAULT_POLICY, PolicyRegistry, build_chain, merged
from gateway.policies.timeout import DeadlinePolicy
from gateway.routing import Router
from gateway.telemetry import tracing as t
from gateway.telemetry.metrics import GatewayMetrics

Publish = Callable[[str, Invocation, Result], Awaitable[None]]
P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class Upstream:
    """An agent with its adapter and its own policy chain."""

    spec: AgentSpec
    adapter: Adapter
    invoke: Handler
    stream: StreamHandler
    default_timeout: float | None


@dataclass(frozen=True, slots=True)
class Entry:
    """Where a routed call enters: its whole chain (the caller's deadline outermost) and the
    time budget it gets when the caller sets none."""

    invoke: Handler
    stream: StreamHandler
    timeout: float | None
    workflow: bool = False


class _PublishCompletion(Policy):
    """A route's `publish`: each successful answer goes out on the route's subject."""

    def __init__(self, subject: str, publish: Publish) -> None:
        self.subject = subject
        self.publish = publish

    async def invoke(self, invocation: Invocation, call_next: Handler) -> Result:
        result = await call_next(invocation)
        await self.publish(self.subject, invocation, result)
        return result


@dataclass(frozen=True, slots=True)
class Plan:
    config: GatewayConfig
    upstreams: Mapping[str, Upstream]
    # By agent or workflow name: a direct call's entry (and a fallback's).
    targets: Mapping[str, Entry]
    # By (route key, target): the route's entry for calls it sends to that target.
    routes: Mapping[tuple[str, str], Entry]
    router: Router
    workflows: Mapping[str, WorkflowRunner]
    policies: PolicyRegistry
    evaluators: tuple[Evaluator, ...]
    # Names callers may use (agents, workflows, routed names), for metric labels.
    known: frozenset[str]

    def prepare(self, invocation: Invocation) -> tuple[Entry, Invocation]:
        """Route the call: the entry that takes it, and the invocation as routed (its agent the
        target, its deadline tightened to the route's or target's default budget)."""
        decision = self.router.route_for(invocation)
        entry = (
            self.targets[decision.agent] if decision.route is None else self.routes[(decision.route, decision.agent)]
        )
        span = trace.get_current_span()
        if decision.route:
            span.set_attribute(t.ATTR_ROUTE, decision.route)
        span.set_attribute(t.ATTR_AGENT, decision.agent)
        if entry.workflow:
            span.set_attribute("agent_gateway.workflow", decision.agent)
        if decision.route or not entry.workflow:
            invocation.record.route = decision.route or ""
        context = invocation.context.with_timeout(entry.timeout)
        return entry, evolve(invocation, agent=decision.agent, context=context)

    async def call_target(self, invocation: Invocation) -> Result:
        """A call straight to a target's entry, unrouted (a fallback's)."""
        entry = self.targets[invocation.agent]
        return await entry.invoke(evolve(invocation, context=invocation.context.with_timeout(entry.timeout)))

    def stream_target(self, invocation: Invocation) -> AsyncIterator[Event]:
        entry = self.targets[invocation.agent]
        return entry.stream(evolve(invocation, context=invocation.context.with_timeout(entry.timeout)))

    async def aclose(self) -> None:
        for evaluator in self.evaluators:
            await evaluator.aclose()
        for upstream in self.upstreams.values():
            await upstream.adapter.aclose()


@dataclass(frozen=True, slots=True)
class PlanServices:
    """What a plan's parts use from the running gateway (they outlive any one plan)."""

    resources: AdapterResources
    tracer: Tracer
    metrics: GatewayMetrics
    recorder: EvaluationRecorder
    # Workflows' steps, and judges, call through the whole gateway like any caller.
    caller: Caller
    judge: Judge
    publish: Publish
    durable: Callable[[], DurableWorkflows | None]


def policy_chain(
    config: GatewayConfig,
    names: list[str],
    owner: str,
    registry: PolicyRegistry,
    dispatch: Handler,
    open_stream: StreamHandler,
) -> list[Policy]:
    """The named policies (or `default` when none are named), stateful parts registered under ``owner``."""
    named = names or ([DEFAULT_POLICY] if DEFAULT_POLICY in config.policies else [])
    return build_chain(merged(named, config.policies), owner, dispatch, open_stream, registry)


def build_plan(config: GatewayConfig, services: PlanServices, previous: PolicyRegistry | None) -> Plan:
    """Build every part of ``config``; raises (and builds nothing live) when a part refuses its options."""
    registry = PolicyRegistry()
    if previous is not None:
        # MCP upstreams' chains are built once at start and live on across reloads: keep them visible.
        registry.breakers.update(_mcp_owned(previous.breakers))
        registry.limits.update(_mcp_owned(previous.limits))
        registry.retries.update(_mcp_owned(previous.retries))
    upstreams: dict[str, Upstream] = {}
    targets: dict[str, Entry] = {}
    routes: dict[tuple[str, str], Entry] = {}
    workflows: dict[str, WorkflowRunner] = {}
    evaluators = _evaluators(config, services)
    everyone = tuple(e for group in evaluators.values() for e in group)
    known = frozenset([*config.agents, *config.workflows, *(r.match.agent for r in config.routes)])
    router = Router(config.routes, [*config.agents, *config.workflows])
    # Filled below; a fallback reaches its target through this plan at call time.
    plan = Plan(config, upstreams, targets, routes, router, workflows, registry, everyone, known)

    def chain(names: list[str], owner: str) -> list[Policy]:
        return policy_chain(config, names, owner, registry, plan.call_target, plan.stream_target)

    deadline = DeadlinePolicy()
    chains: dict[str, tuple[Handler, StreamHandler]] = {}
    for name, agent in config.agents.items():
        tls = UpstreamTls(**agent.tls.model_dump()) if agent.tls is not None else None
        spec = AgentSpec(name, agent.kind, agent.endpoint, agent.options, agent.description, tls, agent.provider)
        adapter = adapter_class(agent.kind)(spec, services.resources)
        attempt = AttemptHandler(spec, adapter, services.tracer, services.metrics)
        # Checks on an agent sit innermost, so a failed sync check is a failed
        # attempt that the retry and fallback policies act on.
        checks: list[Policy] = [EvaluationPolicy(e) for e in evaluators.pop(name, [])]
        invoke, stream = compose([*chain(agent.policies, f"agent/{name}"), *checks], attempt.invoke, attempt.stream)
        upstreams[name] = Upstream(spec, adapter, invoke, stream, agent.timeout)
        chains[name] = invoke, stream
        targets[name] = Entry(*compose([deadline], invoke, stream), agent.timeout)

    descriptions = {name: agent.description for name, agent in config.agents.items()}
    descriptions.update({name: wf.description for name, wf in config.workflows.items()})
    for name, workflow in config.workflows.items():
        durable = services.durable if workflow.durable else None
        runner = WorkflowRunner(name, build_pattern(workflow, descriptions), services.caller, services.tracer, durable)
        workflows[name] = runner
        # As on an agent: the workflow's policies wrap it, its checks sit innermost. No deadline
        # around it: its steps keep the deadline (so the step that ran out is the one named) and
        # its compensations run after it, which an outer timer would cancel.
        checks = [EvaluationPolicy(e) for e in evaluators.pop(name, [])]
        policies = chain(workflow.policies, f"workflow/{name}") if workflow.policies else []
        chains[name] = compose([*policies, *checks], runner.invoke, runner.stream)
        targets[name] = Entry(*chains[name], workflow.timeout, workflow=True)

    for route in config.routes:
        # Checks on a routed name (not an agent's or workflow's own) wrap the whole routed call.
        route_checks: list[Policy] = [EvaluationPolicy(e) for e in evaluators.get(route.match.agent, [])]
        route_policies = chain(route.policies, f"route/{route.key}") if route.policies else []
        for target in dict.fromkeys(route.targets):
            routes[(route.key, target)] = _route_entry(
                route, targets[target], chains[target], route_checks, route_policies, services.publish, deadline
            )

    return plan


def _mcp_owned(policies: Mapping[str, P]) -> dict[str, P]:
    return {owner: policy for owner, policy in policies.items() if owner.startswith("mcp/")}


def _route_entry(
    route: Route,
    target: Entry,
    inner: tuple[Handler, StreamHandler],
    checks: list[Policy],
    policies: list[Policy],
    publish: Publish,
    deadline: DeadlinePolicy,
) -> Entry:
    """Outermost first: the routed name's checks, the completion's publishing, the caller's
    deadline (not around a workflow), the route's policies, then the target's own chain."""
    chain: list[Policy] = [*checks]
    if route.publish:
        chain.append(_PublishCompletion(route.publish, publish))
    if not target.workflow:
        chain.append(deadline)
    timeout = route.timeout if route.timeout is not None else target.timeout
    return Entry(*compose([*chain, *policies], *inner), timeout, target.workflow)


def _evaluators(config: GatewayConfig, services: PlanServices) -> dict[str, list[Evaluator]]:
    checks = {name: build_check(name, cfg, services.judge) for name, cfg in config.checks.items()}
    evaluators: dict[str, list[Evaluator]] = {}
    for evaluation in config.evaluations:
        evaluator = Evaluator(evaluation, checks, services.recorder)
        evaluators.setdefault(evaluation.target, []).append(evaluator)
    return evaluators
