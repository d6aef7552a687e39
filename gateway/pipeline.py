"""The one place that wires routing, policies and adapters together.

``Gateway.invoke``/``Gateway.stream`` take a normalized invocation, route it,
run it through the upstream's policy chain, and reach the adapter through
the *attempt* handler, which opens the client span and computes the context
headers for that attempt.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from gateway.adapters.base import Adapter, AdapterResources
from gateway.adapters.registry import adapter_class
from gateway.call_budget import CallTrees, TreeCall
from gateway.checks import CheckResult, build_check
from gateway.config.schema import GatewayConfig
from gateway.context import HOPS_BAGGAGE, outbound_headers
from gateway.evals.online import EvaluationPolicy, EvaluationRecorder, Evaluator
from gateway.model import (
    AgentSpec,
    Call,
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
    TokenUsage,
    UpstreamTimeout,
    UpstreamTls,
    add_usage,
    evolve,
    new_request_id,
)
from gateway.patterns.build import build_pattern
from gateway.patterns.durable import DurableWorkflows
from gateway.patterns.run import WorkflowRunner
from gateway.policies.base import Handler, Policy, StreamHandler, compose
from gateway.policies.build import DEFAULT_POLICY, PolicyRegistry, build_chain, merged
from gateway.results import ResultCollector
from gateway.routing import Router
from gateway.telemetry import tracing as t
from gateway.telemetry.calls import CallObserver
from gateway.telemetry.metrics import GatewayMetrics

__all__ = ["HOPS_BAGGAGE", "Gateway", "Upstream"]


@dataclass(frozen=True, slots=True)
class Target:
    """What a route or a name reaches: an agent's chain or a workflow's, with its default timeout."""

    invoke: Handler
    stream: StreamHandler
    default_timeout: float | None
    workflow: bool = False


@dataclass(slots=True)
class Upstream:
    """An agent with its adapter and its composed policy chain."""

    spec: AgentSpec
    adapter: Adapter
    invoke: Handler
    stream: StreamHandler
    default_timeout: float | None


def _span_attributes(invocation: Invocation, spec: AgentSpec) -> dict[str, str | int | float]:
    ctx = invocation.context
    attributes: dict[str, str | int | float] = {
        t.ATTR_OPERATION: "invoke_agent",
        t.ATTR_AGENT: spec.name,
        t.ATTR_ADAPTER: spec.kind,
        t.ATTR_ATTEMPT: invocation.attempt,
        t.ATTR_REQUEST_ID: ctx.request_id,
    }
    if ctx.session_id:
        attributes[t.ATTR_SESSION] = ctx.session_id
    if ctx.thread_id:
        attributes[t.ATTR_CONVERSATION] = ctx.thread_id
    if ctx.user_id:
        attributes[t.ATTR_USER] = ctx.user_id
    if spec.provider:
        attributes[t.ATTR_PROVIDER] = spec.provider
    return attributes


def _record_usage(span: trace.Span, invocation: Invocation, usage: TokenUsage | None) -> None:
    """The attempt's tokens on its span, and added to the call's record (every attempt's tokens were spent)."""
    if usage is None:
        return
    span.set_attribute(t.ATTR_INPUT_TOKENS, usage.input_tokens)
    span.set_attribute(t.ATTR_OUTPUT_TOKENS, usage.output_tokens)
    invocation.record.usage = add_usage(invocation.record.usage, usage)


def _record_failure(span: trace.Span, error: BaseException) -> None:
    span.set_status(Status(StatusCode.ERROR, str(error)))
    span.set_attribute(t.ATTR_ERROR_TYPE, error.code.value if isinstance(error, GatewayError) else type(error).__name__)


class AttemptHandler:
    """The terminal of every chain: one upstream attempt in a client span."""

    def __init__(self, spec: AgentSpec, adapter: Adapter, tracer: Tracer, metrics: GatewayMetrics) -> None:
        self.spec = spec
        self.adapter = adapter
        self.tracer = tracer
        self.span_name = f"invoke_agent {spec.name}"
        self.metrics = metrics

    def _count(self, started: float, error: BaseException | None) -> None:
        outcome = "OK" if error is None else error.code.value if isinstance(error, GatewayError) else "CANCELLED"
        m = self.metrics
        m.child(m.attempts, self.spec.name, outcome).inc()
        m.child(m.attempt_seconds, self.spec.name, outcome).observe(time.perf_counter() - started)

    def _start(self, invocation: Invocation) -> tuple[trace.Span, Call]:
        attributes = _span_attributes(invocation, self.spec)
        if invocation.attempt > 1 and invocation.record.retries:
            # The wait before this retry, so a trace shows the backoff between attempt spans.
            attributes[t.ATTR_BACKOFF_MS] = invocation.record.retries[-1].get("backoff_ms", 0)
        span = self.tracer.start_span(self.span_name, kind=SpanKind.CLIENT, attributes=attributes)
        headers = outbound_headers(invocation.context, trace.set_span_in_context(span, otel_context.get_current()))
        return span, Call(invocation, headers)

    async def invoke(self, invocation: Invocation) -> Result:
        invocation.record.attempts += 1
        span, call = self._start(invocation)
        started, error = time.perf_counter(), None
        try:
            result = await self.adapter.invoke(call)
            _record_usage(span, invocation, result.usage)
            return result
        except BaseException as exc:
            error = exc
            _record_failure(span, exc)
            raise
        finally:
            span.end()
            self._count(started, error)

    async def stream(self, invocation: Invocation) -> AsyncIterator[Event]:
        invocation.record.attempts += 1
        span, call = self._start(invocation)
        started, error = time.perf_counter(), None
        usage: TokenUsage | None = None
        try:
            async for event in self.adapter.stream(call):
                if event.usage is not None:
                    usage = add_usage(usage, event.usage)
                yield event
        except BaseException as exc:
            error = exc
            _record_failure(span, exc)
            raise
        finally:
            _record_usage(span, invocation, usage)
            span.end()
            self._count(started, error)


class Gateway:
    """Routes invocations to upstream agents through their policy chains."""

    def __init__(self, config: GatewayConfig, resources: AdapterResources, tracer: Tracer) -> None:
        # Set by the event runtime: publishes a route's answer on the route's `publish` subject.
        self.publish_completion: Callable[[str, Invocation, Result], Awaitable[None]] | None = None
        self.tracer = tracer
        self.resources = resources
        self.policies = PolicyRegistry()
        self.metrics = GatewayMetrics(lambda: self.policies)
        self.calls = CallObserver(self.metrics, self.policies, config.telemetry.logging.payloads)
        self.evaluation_recorder = EvaluationRecorder(tracer, [self._count_check])
        # The request trees with calls in flight here, each with its call budget.
        self.trees = CallTrees()
        # Set by the server when a workflow is durable: the journal and the leases of its runs.
        self.durable_workflows: DurableWorkflows | None = None
        self._load(config)

    def reload(self, config: GatewayConfig) -> Callable[[], Awaitable[None]]:
        """Apply a new configuration's agents, routes, policies, workflows and checks.

        Calls already running finish on the old chains (they hold them); new calls take
        the new ones. Returns the closer of the old adapters, to await once those calls
        had time to finish (the server waits ``drain_timeout``). Breakers start closed.
        """
        old_upstreams, old_evaluators = self.upstreams, self._all_evaluators

        async def close_old() -> None:
            for evaluator in old_evaluators:
                await evaluator.aclose()
            for upstream in old_upstreams.values():
                await upstream.adapter.aclose()

        self._load(config)
        return close_old

    def _load(self, config: GatewayConfig) -> None:
        # No await happens while building, so no call ever sees half a configuration;
        # a failure (an adapter refusing its options) restores the previous one whole.
        snapshot = dict(self.__dict__)
        self.config = config
        previous = getattr(self, "policies", None)
        self.policies = PolicyRegistry()
        if previous is not None:
            # MCP upstreams' chains are built once at start and live on across reloads: keep them visible.
            for mine, theirs in (
                (self.policies.breakers, previous.breakers),
                (self.policies.limits, previous.limits),
                (self.policies.retries, previous.retries),
            ):
                mine.update({k: v for k, v in theirs.items() if k.startswith("mcp/")})
        try:
            self._build(config)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(snapshot)
            raise
        self.calls.policies = self.policies
        self.calls.payloads = config.telemetry.logging.payloads
        self.calls.upstream_body_excerpt = config.server.upstream_body_excerpt
        self.calls.known = frozenset([*self.upstreams, *self.workflows, *(r.match.agent for r in config.routes)])

    def _build(self, config: GatewayConfig) -> None:
        resources, tracer = self.resources, self.tracer
        self.evaluators = self._build_evaluators()
        self.upstreams: dict[str, Upstream] = {}
        for name, agent in config.agents.items():
            tls = UpstreamTls(**agent.tls.model_dump()) if agent.tls is not None else None
            spec = AgentSpec(name, agent.kind, agent.endpoint, agent.options, agent.description, tls, agent.provider)
            adapter = adapter_class(agent.kind)(spec, resources)
            attempt = AttemptHandler(spec, adapter, tracer, self.metrics)
            # Checks on an agent sit innermost, so a failed sync check is a failed
            # attempt that the retry and fallback policies act on.
            checks: list[Policy] = [EvaluationPolicy(e) for e in self.evaluators.pop(name, [])]
            named = agent.policies or ([DEFAULT_POLICY] if DEFAULT_POLICY in config.policies else [])
            chain = self._chain(named, f"agent/{name}")
            invoke, stream = compose([*chain, *checks], attempt.invoke, attempt.stream)
            self.upstreams[name] = Upstream(spec, adapter, invoke, stream, agent.timeout)
        self.route_chains: dict[str, tuple[Handler, StreamHandler]] = {}
        for i, route in enumerate(config.routes):
            if route.policies:
                key = route.name or f"routes[{i}]"
                chain = self._chain(route.policies, f"route/{key}")
                self.route_chains[key] = compose(chain, self._upstream_invoke, self._upstream_stream)
        self.router = Router(config.routes, [*self.upstreams, *config.workflows])
        descriptions = {name: agent.description for name, agent in config.agents.items()}
        descriptions.update({name: wf.description for name, wf in config.workflows.items()})
        self.workflows = {
            name: WorkflowRunner(
                name,
                build_pattern(workflow, descriptions),
                self,
                tracer,
                (lambda: self.durable_workflows) if workflow.durable else None,
            )
            for name, workflow in config.workflows.items()
        }
        self.targets: dict[str, Target] = {
            name: Target(u.invoke, u.stream, u.default_timeout) for name, u in self.upstreams.items()
        }
        for name, workflow in config.workflows.items():
            # As on an agent: the workflow's policies wrap it, its checks sit innermost, so a
            # failed sync check is a failed run that a retry or fallback acts on.
            runner = self.workflows[name]
            checks = [EvaluationPolicy(e) for e in self.evaluators.pop(name, [])]
            chain = self._chain(workflow.policies, f"workflow/{name}") if workflow.policies else []
            invoke, stream = compose([*chain, *checks], runner.invoke, runner.stream)
            self.targets[name] = Target(invoke, stream, workflow.timeout, workflow=True)
        self._route_timeouts: Mapping[str, float | None] = {
            (r.name or f"routes[{i}]"): r.timeout for i, r in enumerate(config.routes)
        }
        self._route_publish: Mapping[str, str] = {
            (r.name or f"routes[{i}]"): r.publish for i, r in enumerate(config.routes) if r.publish
        }

    def _count_check(self, target: str, result: CheckResult) -> None:
        self.metrics.child(self.metrics.checks, target, result.check, str(result.passed).lower()).inc()

    def _build_evaluators(self) -> dict[str, list[Evaluator]]:
        checks = {name: build_check(name, cfg, self.judge) for name, cfg in self.config.checks.items()}
        evaluators: dict[str, list[Evaluator]] = {}
        for evaluation in self.config.evaluations:
            evaluator = Evaluator(evaluation, checks, self.evaluation_recorder)
            evaluators.setdefault(evaluation.target, []).append(evaluator)
        self._all_evaluators = [e for group in evaluators.values() for e in group]
        return evaluators

    async def judge(self, agent: str, payload: Mapping[str, Any]) -> Result:
        message = Message(Role.USER, (DataPart(dict(payload)),))
        return await self.invoke(Invocation(agent, (message,), Context(request_id=new_request_id())))

    async def _evaluated(self, invocation: Invocation, result: Result) -> Result:
        """Checks on routes and workflows (agents are checked inside their chains)."""
        for evaluator in self.evaluators.get(invocation.agent, ()):
            if not evaluator.sampled():
                continue
            if evaluator.config.mode == "sync":
                await evaluator.check_sync(invocation, result)
            else:
                evaluator.check_later(invocation, result)
        return result

    async def _evaluated_stream(self, invocation: Invocation, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
        # The stream is already with the caller: its checks can only be recorded.
        evaluators = [e for e in self.evaluators[invocation.agent] if e.sampled()]
        collector = ResultCollector(invocation.agent)
        async for event in events:
            collector.add(event)
            yield event
        for evaluator in evaluators:
            evaluator.check_later(invocation, collector.result())

    def policy_chain(self, names: list[str], owner: str) -> list[Policy]:
        """The chain for another kind of upstream (an MCP server): the named policies, or
        `default`, with stateful parts registered under ``owner`` like an agent's."""
        named = names or ([DEFAULT_POLICY] if DEFAULT_POLICY in self.config.policies else [])
        return self._chain(named, owner)

    def _chain(self, names: list[str], owner: str) -> list[Policy]:
        spec = merged(names, self.config.policies)
        return build_chain(spec, owner, self.invoke, self.open_stream, self.policies)

    async def _upstream_invoke(self, invocation: Invocation) -> Result:
        return await self.targets[invocation.agent].invoke(invocation)

    def _upstream_stream(self, invocation: Invocation) -> AsyncIterator[Event]:
        return self.targets[invocation.agent].stream(invocation)

    def _enter(self, invocation: Invocation) -> tuple[Invocation, TreeCall]:
        """Count the call in its hop count and its tree's call budget (both in the baggage)."""
        invocation = self._next_hop(invocation)
        invocation, call = self.trees.enter(invocation, self.config.server.max_calls)
        invocation.record.tree_calls = call.tree.used
        return invocation, call

    def cancels_on_disconnect(self, agent: str) -> bool:
        """Whether a foreground call of ``agent`` is cancelled when its caller hangs up
        (workflows: unless they say otherwise), whatever the listener says."""
        names = [agent, *(t for r in self.config.routes if r.match.agent == agent for t in r.targets)]
        return any((wf := self.config.workflows.get(n)) is not None and wf.cancel_on_disconnect for n in names)

    def _next_hop(self, invocation: Invocation) -> Invocation:
        """Count the hop in the call's baggage; refuse calls nested too deep (loops)."""
        raw = invocation.context.baggage.get(HOPS_BAGGAGE, "0")
        hops = int(raw) if raw.isdigit() else 0
        limit = self.config.server.max_hops
        if hops >= limit:
            raise ResourceExhausted(
                f"the call is nested {hops} hops deep, the limit is {limit} (server.max_hops): "
                "is an agent or workflow calling itself?",
                agent=invocation.agent,
                transient=False,
            )
        baggage = {**invocation.context.baggage, HOPS_BAGGAGE: str(hops + 1)}
        return evolve(invocation, context=evolve(invocation.context, baggage=baggage))

    def _prepare(self, invocation: Invocation) -> tuple[Handler, StreamHandler, Invocation, Target]:
        """The routed invocation and the handlers that take it: the route's chain when it
        has policies (wrapping the target's), else the agent's or workflow's own chain."""
        decision = self.router.route_for(invocation)
        target = self.targets[decision.agent]
        timeout = self._route_timeouts.get(decision.route) if decision.route else None
        context = invocation.context.with_timeout(timeout if timeout is not None else target.default_timeout)
        span = trace.get_current_span()
        if decision.route:
            span.set_attribute(t.ATTR_ROUTE, decision.route)
        span.set_attribute(t.ATTR_AGENT, decision.agent)
        if target.workflow:
            span.set_attribute("agent_gateway.workflow", decision.agent)
        if decision.route or not target.workflow:
            invocation.record.route = decision.route or ""
        invoke, stream = self.route_chains.get(decision.route or "", (target.invoke, target.stream))
        return invoke, stream, evolve(invocation, agent=decision.agent, context=context), target

    async def invoke(self, invocation: Invocation) -> Result:
        record = invocation.record
        record.depth += 1
        outermost = record.depth == 1
        started = self.calls.started(invocation) if outermost else 0.0
        error: GatewayError | None = None
        tree: TreeCall | None = None
        try:
            invocation, tree = self._enter(invocation)
            if invocation.agent in self.evaluators:
                return await self._evaluated(invocation, await self._invoke(invocation))
            return await self._invoke(invocation)
        except GatewayError as exc:
            error = exc
            raise
        except asyncio.CancelledError:
            error = Cancelled("the caller went away", agent=invocation.agent)
            raise
        finally:
            if tree is not None:
                self.trees.leave(tree, cancelled=isinstance(error, Cancelled))
            record.depth -= 1
            if outermost:
                self.calls.finished(invocation, started, error, streamed=False)

    async def _invoke(self, invocation: Invocation) -> Result:
        invoke, _, invocation, target = self._prepare(invocation)
        if target.workflow:
            # Its steps keep the deadline (so the step that ran out is the one named) and
            # its compensations run after it; an outer timer would cancel them both.
            result = await invoke(invocation)
        else:
            remaining = invocation.context.remaining()
            try:
                async with asyncio.timeout(remaining):
                    result = await invoke(invocation)
            except TimeoutError:
                raise UpstreamTimeout(
                    f"the call's deadline passed after {remaining:.3f}s", agent=invocation.agent
                ) from None
        subject = self._route_publish.get(invocation.record.route)
        if subject is not None and self.publish_completion is not None:
            await self.publish_completion(subject, invocation, result)
        return result

    def open_stream(self, invocation: Invocation) -> tuple[str, AsyncIterator[Event]]:
        """Route now (so routing errors surface before any byte is sent) and
        return the answering agent's name with its event stream."""
        tree: TreeCall | None = None
        try:
            invocation, tree = self._enter(invocation)
            if invocation.agent in self.evaluators:
                name, events = self._open_stream(invocation)
                events = self._evaluated_stream(invocation, events)
            else:
                name, events = self._open_stream(invocation)
        except GatewayError as error:
            if tree is not None:
                self.trees.leave(tree)
            if invocation.record.depth == 0:
                self.calls.failed(invocation, error)
            raise
        return name, self._watched(invocation, events, tree)

    async def _watched(
        self, invocation: Invocation, events: AsyncIterator[Event], tree: TreeCall
    ) -> AsyncIterator[Event]:
        record = invocation.record
        record.depth += 1
        outermost = record.depth == 1
        started = self.calls.started(invocation) if outermost else 0.0
        if outermost:
            self.metrics.child(self.metrics.streams_open, self.calls.label(invocation.agent)).inc()
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
            self.trees.leave(tree, cancelled=isinstance(error, Cancelled))
            record.depth -= 1
            if outermost:
                self.metrics.child(self.metrics.streams_open, self.calls.label(invocation.agent)).dec()
                self.calls.finished(invocation, started, error, streamed=True)

    def _open_stream(self, invocation: Invocation) -> tuple[str, AsyncIterator[Event]]:
        _, stream, invocation, _ = self._prepare(invocation)
        return invocation.agent, stream(invocation)

    def agents(self) -> list[tuple[AgentSpec, bool]]:
        listed = [(u.spec, type(u.adapter).streaming) for u in self.upstreams.values()]
        for name, workflow in self.config.workflows.items():
            listed.append((AgentSpec(name, f"workflow/{workflow.kind}", "", {}, workflow.description), True))
        return listed

    async def aclose(self) -> None:
        for evaluator in self._all_evaluators:
            await evaluator.aclose()
        for upstream in self.upstreams.values():
            await upstream.adapter.aclose()
