"""Policies: middleware around one upstream call (timeout, retry, breaker, limits, fallback)."""

from gateway.policies.base import Handler, Policy, StreamHandler, compose

__all__ = ["Handler", "Policy", "StreamHandler", "compose"]
