"""Route matching: which agent answers a call. Pure, no I/O.

Routes are tried in file order and the first whose every condition holds wins (Envoy's and the
Kubernetes Gateway API's "first match" within one listener). A call no route takes goes to the agent
of its name, if one is defined. Conditions are compiled once, at load, into small tests that say why
they fail, so ``agent-gateway routes explain`` reads the very tests the data path runs.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from gateway.config.schema import Match, Route, ValueMatch
from gateway.model import ANONYMOUS_CALLER, JSON, Caller, Invocation, NotFound

# A test of one condition: None when it holds, else why not.
Condition = Callable[["RouteRequest"], str | None]


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """What routes match on. ``method``/``path`` are set for passthrough calls only."""

    agent: str
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    method: str | None = None
    path: str | None = None
    caller: Caller = ANONYMOUS_CALLER

    @classmethod
    def of(cls, invocation: Invocation) -> RouteRequest:
        return cls(invocation.agent, invocation.headers, invocation.query, caller=invocation.caller)


@dataclass(frozen=True, slots=True)
class RouteDecision:
    agent: str
    # None when the call named an agent directly and no route matched.
    route: str | None


@dataclass(frozen=True, slots=True)
class RouteVerdict:
    """One route's answer to a request, for explanations."""

    route: str
    reasons: tuple[str, ...]

    @property
    def matched(self) -> bool:
        return not self.reasons


def _value_condition(match: ValueMatch, kind: str, values: Callable[[RouteRequest], Mapping[str, str]]) -> Condition:
    name = match.name
    label = f"{kind} {name}"
    test: Callable[[str | None], bool]
    if match.present is not None:
        wanted = match.present
        test, expected = (lambda v: (v is not None) == wanted), ("present" if wanted else "absent")
    elif match.exact is not None:
        exact = match.exact
        test, expected = (lambda v: v == exact), repr(exact)
    elif match.prefix is not None:
        prefix = match.prefix
        test, expected = (lambda v: v is not None and v.startswith(prefix)), f"starting with {prefix!r}"
    else:
        pattern = re.compile(match.regex or "")
        test, expected = (lambda v: v is not None and pattern.fullmatch(v) is not None), f"matching /{pattern.pattern}/"
    invert = match.invert
    if invert:
        expected = f"not {expected}"

    def condition(request: RouteRequest) -> str | None:
        value = values(request).get(name)
        if test(value) != invert:
            return None
        return f"{label} is {'absent' if value is None else repr(value)}, wanted {expected}"

    return condition


def _claim_holds(claim: JSON, allowed: frozenset[str]) -> bool:
    if isinstance(claim, list):
        return any(isinstance(item, str | int) and str(item) in allowed for item in claim)
    return claim is not None and not isinstance(claim, dict) and str(claim) in allowed


def compile_match(match: Match) -> list[Condition]:
    """The conditions of a route's ``match``, agent first (the cheapest and most selective)."""
    agent = match.agent
    conditions: list[Condition] = [
        lambda r: None if r.agent == agent else f"the call is for agent {r.agent!r}, not {agent!r}"
    ]
    if match.path_prefix is not None or match.methods is not None:
        conditions.append(lambda r: None if r.path is not None else "only passthrough calls (/v1/proxy/...) match")
    if match.methods is not None:
        methods = frozenset(match.methods)
        conditions.append(
            lambda r: None if r.method in methods else f"method {r.method} is not one of {sorted(methods)}"
        )
    if (prefix := match.path_prefix) is not None:
        conditions.append(
            lambda r: None if (r.path or "").startswith(prefix) else f"path {r.path!r} does not start with {prefix!r}"
        )
    conditions += [_value_condition(m, "header", lambda r: r.headers) for m in match.headers]
    conditions += [_value_condition(m, "query parameter", lambda r: r.query) for m in match.query]
    if match.identities is not None:
        identities = frozenset(match.identities)
        conditions.append(
            lambda r: (
                None
                if r.caller.name in identities
                else f"the caller is {r.caller.name or 'anonymous'!r}, not one of {sorted(identities)}"
            )
        )
    for claim, wanted in match.claims.items():
        allowed = frozenset([wanted] if isinstance(wanted, str) else wanted)

        def claim_condition(r: RouteRequest, claim: str = claim, allowed: frozenset[str] = allowed) -> str | None:
            if _claim_holds(r.caller.claims.get(claim), allowed):
                return None
            return f"claim {claim} is {r.caller.claims.get(claim)!r}, wanted one of {sorted(allowed)}"

        conditions.append(claim_condition)
    return conditions


class Router:
    """Routes in file order; the first whose ``match`` holds wins.

    A call that no route matches goes to the agent of that name, if one is
    defined; otherwise it is a NOT_FOUND error.
    """

    def __init__(
        self,
        routes: Sequence[Route],
        agents: Sequence[str],
        choose: Callable[[Sequence[str], Sequence[int]], str] | None = None,
    ) -> None:
        self.routes = list(routes)
        self.agents = frozenset(agents)
        self._compiled = [(route, route.key, compile_match(route.match)) for route in routes]
        self._choose = choose or (lambda names, weights: random.choices(names, weights)[0])

    def route_for(self, invocation: Invocation) -> RouteDecision:
        return self.decide(RouteRequest.of(invocation))

    def decide(self, request: RouteRequest) -> RouteDecision:
        for route, key, conditions in self._compiled:
            if all(condition(request) is None for condition in conditions):
                return RouteDecision(self._target(route), key)
        if request.agent in self.agents:
            return RouteDecision(request.agent, None)
        raise NotFound(
            f"no agent or route named {request.agent!r}; list the agents with GET /v1/agents or ListAgents",
            agent=request.agent,
        )

    def explain(self, request: RouteRequest) -> list[RouteVerdict]:
        """Every route's verdict on ``request``, in evaluation order, each with all its failed conditions."""
        verdicts = []
        for _, key, conditions in self._compiled:
            reasons = tuple(reason for condition in conditions if (reason := condition(request)) is not None)
            verdicts.append(RouteVerdict(key, reasons))
        return verdicts

    def _target(self, route: Route) -> str:
        if route.split is not None:
            targets = [t for t in route.split if t.weight > 0]
            return self._choose([t.agent for t in targets], [t.weight for t in targets])
        assert route.target is not None
        return route.target
