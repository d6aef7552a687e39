"""Per-identity rate limits: a token bucket for each identity (and rule)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from fnmatch import fnmatchcase

from gateway.config.schema import RateLimit
from gateway.model import ResourceExhausted

_MAX_BUCKETS = 100_000  # bounded memory under many identities: oldest buckets are dropped


class TokenBucket:
    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst, self.tokens, self.updated = rate, burst, float(burst), now

    def take(self, now: float) -> float:
        """0 when a token was taken, else the seconds until one is available."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimiter:
    def __init__(self, limits: Sequence[RateLimit], clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = list(limits)
        self.clock = clock
        self.buckets: dict[tuple[int, str], TokenBucket] = {}

    def check(self, identity: str) -> None:
        now = self.clock()
        for index, limit in enumerate(self.limits):
            if not any(fnmatchcase(identity, p) for p in limit.identities):
                continue
            key = (index, identity)
            bucket = self.buckets.get(key)
            if bucket is None:
                if len(self.buckets) >= _MAX_BUCKETS:
                    self.buckets.pop(next(iter(self.buckets)))
                bucket = self.buckets[key] = TokenBucket(limit.rate, limit.burst, now)
            if (wait := bucket.take(now)) > 0:
                raise ResourceExhausted(f"rate limit exceeded for {identity}; retry in {wait:.1f}s", retry_after=wait)
