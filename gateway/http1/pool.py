"""Idle keep-alive connections to one origin: bounded, most recent first, expired when idle too long."""

from __future__ import annotations

import asyncio

from gateway.http1.connection import Http1Connection


class OriginPool:
    """At most ``max_idle`` idle connections to one origin, each kept at most ``idle_expiry`` s."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_idle: int, idle_expiry: float) -> None:
        self.loop = loop
        self.max_idle = max_idle
        self.idle_expiry = idle_expiry
        self.idle: list[Http1Connection] = []
        self._sweep: asyncio.TimerHandle | None = None

    def acquire(self) -> Http1Connection | None:
        """The most recently used live idle connection, None when there is none."""
        idle = self.idle
        while idle:
            connection = idle.pop()
            if connection.closed or connection.transport is None or connection.transport.is_closing():
                continue
            if self.loop.time() - connection.idle_since >= self.idle_expiry:
                connection.close()
                continue
            return connection
        return None

    def release(self, connection: Http1Connection) -> None:
        if len(self.idle) >= self.max_idle:
            connection.close()
            return
        connection.idle_since = self.loop.time()
        self.idle.append(connection)
        if self._sweep is None:
            self._sweep = self.loop.call_later(self.idle_expiry, self._expire)

    def _expire(self) -> None:
        """Close what has idled too long (oldest first in the list), and look again later."""
        self._sweep = None
        now = self.loop.time()
        keep: list[Http1Connection] = []
        for connection in self.idle:
            if connection.closed:
                continue
            if now - connection.idle_since >= self.idle_expiry:
                connection.close()
            else:
                keep.append(connection)
        self.idle = keep
        if keep:
            self._sweep = self.loop.call_at(keep[0].idle_since + self.idle_expiry, self._expire)

    def close(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for connection in self.idle:
            connection.close()
        self.idle = []
