"""The gateway core: every call enters here, is counted in its request tree, routed by the
current plan and run through its entry's chain; the fronts ask it what they need to know."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import Tracer

from gateway.adapters.base import AdapterResources
from gateway.call_budget import CallTrees, TreeCall
from gateway.checks import CheckResult
from gateway.config.schema import GatewayConfig
from gateway.evals.online import EvaluationRecorder
from gateway.model import (
    AgentSpec,
    Cancelled,
    Context,
    DataPart,
    Event,
    GatewayError,
    Invocation,
    Message,
    ResourceExhausted,
    Result,
    Role,
    new_request_id,
)
from gateway.patterns.durable import DurableWorkflows
from gateway.patterns.run import WorkflowRunner
from gateway.pipeline.plan import Plan, PlanServices, Upstream, build_plan, policy_chain
from gateway.policies.base import Policy
from gateway.policies.build import PolicyRegistry
from gateway.propagation import HOPS_BAGGAGE
from gateway.routing import RouteDecision, RouteRequest
from gateway.telemetry.calls import CallObserver
from gateway.telemetry.metrics import GatewayMetrics


@dataclass(slots=True)
class _Admitted:
    """A call let in: the invocation as counted (hops, tree) and its ticket out of the tree."""

    invocation: Invocation
    tree: TreeCall


class Gateway:
    """Routes invocations to upstream agents and workflows through their policy chains."""

    def __init__(self, config: GatewayConfig, resources: AdapterResources, tracer: Tracer) -> None:
        # Set by the event runtime: publishes a route's answer on the route's `publish` subject.
        self.publish_completion: Callable[[str, Invocation, Result], Awaitable[None]] | None = None
        self.tracer = tracer
        self.resources = resources
        # Metrics read the policies' state through the current plan (none yet while the first is built).
        self.metrics = GatewayMetrics(
            lambda: plan.policies if (plan := getattr(self, "plan", None)) else PolicyRegistry()
        )
        self.observer = CallObserver(self.metrics, PolicyRegistry(), config.telemetry.logging.payloads)
        self.evaluation_recorder = EvaluationRecorder(tracer, [self._count_check])
        # The request trees with calls in flight here, each with its call budget.
        self.trees = CallTrees()
        # Set by the server when a workflow is durable: the journal and the leases of its runs.
        self.durable_workflows: DurableWorkflows | None = None
        self._services = PlanServices(
            resources,
            tracer,
            self.metrics,
            self.evaluation_recorder,
            self,
            self.judge,
            self._publish,
            lambda: self.durable_workflows,
        )
        self._use(build_plan(config, self._services, None))

    def _use(self, plan: Plan) -> None:
        self.plan = plan
        observer = self.observer
        observer.policies = plan.policies
        observer.payloads = plan.config.telemetry.logging.payloads
        observer.upstream_body_excerpt = plan.config.server.upstream_body_excerpt
        observer.known = plan.known

    def reload(self, config: GatewayConfig) -> Callable[[], Awaitable[None]]:
        """Apply a new configuration's agents, routes, policies, workflows and checks.

        Calls already running finish on the old plan (they hold its chains); new calls take
        the new one. Returns the closer of the old plan, to await once those calls had time
        to finish (the server waits ``drain_timeout``). Breakers start closed.
        """
        old = self.plan
        self._use(build_plan(config, self._services, old.policies))
        return old.aclose

    # What the fronts and the admin API read: the current plan's, never its internals.

    @property
    def config(self) -> GatewayConfig:
        return self.plan.config

    @property
    def policies(self) -> PolicyRegistry:
        return self.plan.policies

    @property
    def workflows(self) -> Mapping[str, WorkflowRunner]:
        return self.plan.workflows

    def upstream(self, name: str) -> Upstream | None:
        """The agent of that name (None for workflows and unknown names)."""
        return self.plan.upstreams.get(name)

    def upstream_names(self) -> list[str]:
        return list(self.plan.upstreams)

    def known_names(self) -> frozenset[str]:
        """Every name a caller can call: agents, workflows and routed names."""
        return self.plan.known

    def decide(self, request: RouteRequest) -> RouteDecision:
        return self.plan.router.decide(request)

    def agents(self) -> list[tuple[AgentSpec, bool]]:
        plan = self.plan
        listed = [(u.spec, type(u.adapter).streaming) for u in plan.upstreams.values()]
        for name, workflow in plan.config.workflows.items():
            listed.append((AgentSpec(name, f"workflow/{workflow.kind}", "", {}, workflow.description), True))
        return listed

    def cancels_on_disconnect(self, agent: str) -> bool:
        """Whether a foreground call of ``agent`` is cancelled when its caller hangs up
        (workflows: unless they say otherwise), whatever the listener says."""
        config = self.plan.config
        names = [agent, *(t for r in config.routes if r.match.agent == agent for t in r.targets)]
        return any((wf := config.workflows.get(n)) is not None and wf.cancel_on_disconnect for n in names)

    def policy_chain(self, names: list[str], owner: str) -> list[Policy]:
        """The chain for another kind of upstream (an MCP server): the named policies, or
        `default`, with stateful parts registered under ``owner`` like an agent's. Its fallbacks
        reach their targets through whichever plan is current."""
        return policy_chain(
            self.plan.config,
            names,
            owner,
            self.plan.policies,
            lambda invocation: self.plan.call_target(invocation),
            lambda invocation: self.plan.stream_target(invocation),
        )

    async def judge(self, agent: str, payload: Mapping[str, Any]) -> Result:
        message = Message(Role.USER, (DataPart(dict(payload)),))
        return await self.invoke(Invocation(agent, (message,), Context(request_id=new_request_id())))

    def _count_check(self, target: str, result: CheckResult) -> None:
        self.metrics.child(self.metrics.checks, target, result.check, str(result.passed).lower()).inc()

    async def _publish(self, subject: str, invocation: Invocation, result: Result) -> None:
        if self.publish_completion is not None:
            await self.publish_completion(subject, invocation, result)

    # The call path. Invoke and stream share every decision: admission and release below.

    def _admit(self, invocation: Invocation, *, streamed: bool) -> _Admitted:
        """Count the hop and the call in its tree's budget (both travel in the baggage);
        refuse calls nested too deep (loops) or past the tree's budget."""
        raw = invocation.context.baggage.get(HOPS_BAGGAGE, "0")
        hops = int(raw) if raw.isdigit() else 0
        limit = self.plan.config.server.max_hops
        if hops >= limit:
            raise ResourceExhausted(
                f"the call is nested {hops} hops deep, the limit is {limit} (server.max_hops): "
                "is an agent or workflow calling itself?",
                agent=invocation.agent,
                transient=False,
            )
        # A unary call's task is cancelled with its tree; a stream ends when its reader goes.
        invocation, tree = self.trees.enter(
            invocation, self.plan.config.server.max_calls, track_task=not streamed, hops=hops + 1
        )
        invocation.record.tree_calls = tree.tree.used
        return _Admitted(invocation, tree)

    def _release(self, admitted: _Admitted, started: float, error: GatewayError | None, *, streamed: bool) -> None:
        self.trees.leave(admitted.tree, cancelled=isinstance(error, Cancelled))
        self.observer.finished(admitted.invocation, started, error, streamed=streamed)

    async def invoke(self, invocation: Invocation) -> Result:
        started = self.observer.started(invocation)
        admitted: _Admitted | None = None
        error: GatewayError | None = None
        try:
            admitted = self._admit(invocation, streamed=False)
            entry, routed = self.plan.prepare(admitted.invocation)
            return await entry.invoke(routed)
        except GatewayError as exc:
            error = exc
            raise
        except asyncio.CancelledError:
            error = Cancelled("the caller went away", agent=invocation.agent)
            raise
        finally:
            if admitted is not None:
                self._release(admitted, started, error, streamed=False)
            else:
                self.observer.finished(invocation, started, error, streamed=False)

    def open_stream(self, invocation: Invocation) -> tuple[str, AsyncIterator[Event]]:
        """Route now (so routing errors surface before any byte is sent) and
        return the answering agent's name with its event stream."""
        admitted: _Admitted | None = None
        try:
            admitted = self._admit(invocation, streamed=True)
            entry, routed = self.plan.prepare(admitted.invocation)
            events = entry.stream(routed)
        except GatewayError as error:
            if admitted is not None:
                self.trees.leave(admitted.tree)
            self.observer.failed(invocation, error)
            raise
        return routed.agent, self._watched(admitted, events)

    async def _watched(self, admitted: _Admitted, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
        invocation = admitted.invocation
        started = self.observer.started(invocation)
        label = self.observer.label(invocation.agent)
        self.metrics.child(self.metrics.streams_open, label).inc()
        error: GatewayError | None = None
        try:
            async for event in events:
                yield event
        except GatewayError as exc:
            error = exc
            raise
        except (asyncio.CancelledError, GeneratorExit):
            error = Cancelled("the caller went away", agent=invocation.agent)
            raise
        finally:
            self.metrics.child(self.metrics.streams_open, label).dec()
            self._release(admitted, started, error, streamed=True)

    async def aclose(self) -> None:
        await self.plan.aclose()
