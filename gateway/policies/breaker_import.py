"""pybreaker, imported without the Redis client it does not need until a breaker stores
its state in Redis.

pybreaker imports ``redis`` at its own import whenever redis is installed, for its Redis
storage alone: about 7.5 MB of resident memory in every gateway, shared breakers or not.
Here it is imported with ``redis`` masked (so its import finds no redis), and
:func:`enable_redis_storage` binds what pybreaker's import would have bound, when a
``storage: redis`` breaker is built.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def _redis_masked() -> Iterator[None]:
    if "redis" in sys.modules:  # already loaded (a Redis state store): nothing to save
        yield
        return
    sys.modules["redis"] = None  # type: ignore[assignment]  # makes `import redis` raise ImportError
    try:
        yield
    finally:
        if "redis" in sys.modules and sys.modules["redis"] is None:
            del sys.modules["redis"]


# Runs once, at the gateway's import (one thread): nothing else imports redis meanwhile.
with _redis_masked():
    import pybreaker as pybreaker  # `as`: re-exported to breaker.py


def enable_redis_storage() -> None:
    """Import redis and give pybreaker the names its import binds when redis is present
    (CircuitRedisStorage checks ``HAS_REDIS_SUPPORT`` and catches ``RedisError``)."""
    if pybreaker.HAS_REDIS_SUPPORT:
        return
    import redis
    import redis.client
    import redis.exceptions

    vars(pybreaker).update(
        Redis=redis.Redis,
        Pipeline=redis.client.Pipeline,
        RedisError=redis.exceptions.RedisError,
        HAS_REDIS_SUPPORT=True,
    )
