"""The runtime core: a plan built once per configuration (plan.py), the gateway every call
enters (core.py), and the attempt at the end of every agent's chain (attempt.py)."""

from gateway.pipeline.core import Gateway
from gateway.pipeline.plan import Entry, Plan, Upstream, build_plan

__all__ = ["Entry", "Gateway", "Plan", "Upstream", "build_plan"]
