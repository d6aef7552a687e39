"""Route matching: which agent answers an invocation. Pure, no I/O."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway.config.schema import Route
from gateway.model import Invocation, NotFound


@dataclass(frozen=True, slots=True)
class RouteDecision:
    agent: str
    # None when the invocation named an agent directly and no route matched.
    route: str | None


class Router:
    """Routes in file order; the first whose ``match`` holds wins.

    An invocation that no route matches goes to the agent of that name, if
    one is defined; otherwise it is a NOT_FOUND error.
    """

    def __init__(
        self,
        routes: Sequence[Route],
        agents: Sequence[str],
        choose: Callable[[Sequence[str], Sequence[int]], str] | None = None,
    ) -> None:
        self.routes = list(routes)
        self.agents = frozenset(agents)
        self._choose = choose or (lambda names, weights: random.choices(names, weights)[0])

    def route_for(self, invocation: Invocation) -> RouteDecision:
        for index, route in enumerate(self.routes):
            if route.match.agent != invocation.agent:
                continue
            if any(invocation.headers.get(k) != v for k, v in route.match.headers.items()):
                continue
            name = route.name or f"routes[{index}]"
            if route.split is not None:
                targets = [t for t in route.split if t.weight > 0]
                return RouteDecision(self._choose([t.agent for t in targets], [t.weight for t in targets]), name)
            assert route.target is not None
            return RouteDecision(route.target, name)
        if invocation.agent in self.agents:
            return RouteDecision(invocation.agent, None)
        raise NotFound(
            f"no agent or route named {invocation.agent!r}; list the agents with GET /v1/agents or ListAgents",
            agent=invocation.agent,
        )
