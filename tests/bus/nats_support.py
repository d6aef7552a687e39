"""Reach the real NATS server for tests: skip when absent, fail instead under CI=true."""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from dataclasses import dataclass

import pytest

NATS_URL = os.environ.get("AGW_TEST_NATS_URL", "nats://127.0.0.1:4222")


def require_nats() -> None:
    host, _, port = NATS_URL.removeprefix("nats://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=1.0).close()
    except OSError as exc:
        reason = f"NATS with JetStream is not reachable at {NATS_URL}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@dataclass(frozen=True)
class Names:
    """Unique names per test, so tests never share streams, consumers or buckets."""

    prefix: str
    dead_letter_prefix: str
    stream_prefix: str

    @classmethod
    def fresh(cls) -> Names:
        tag = uuid.uuid4().hex[:10]
        return cls(f"ev{tag}", f"dl{tag}", f"T{tag}")


async def delete_nats_resources(names: Names) -> None:
    """Remove the streams and the key-value bucket a test's bus created."""
    import nats
    import nats.js.errors

    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        for prefix in (names.prefix, names.dead_letter_prefix):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(f"{names.stream_prefix}_{prefix.upper()}")
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_key_value(f"{names.stream_prefix}_processed")
    finally:
        await nc.close()
