"""Relay.serve writes the frames that are ready together in one write, never holding one for
a later frame, and a write that fails (or a cancellation) while the upstream is mid-read
still ends the upstream's stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.model import GatewayError
from gateway.server.relay import Relay


class _Wire:
    def event(self, item: int) -> bytes:
        return b"<%d>" % item

    def end(self) -> bytes:
        return b"<end>"

    def error(self, error: GatewayError) -> bytes:
        return b"<error>"


async def test_ready_frames_go_out_in_one_write_before_the_stream_waits() -> None:
    writes: list[bytes] = []
    more, written = asyncio.Event(), asyncio.Event()

    async def items() -> AsyncIterator[int]:
        for i in range(5):
            yield i  # all five ready at once, like events parsed from one read
        await more.wait()
        yield 5

    async def send(frame: bytes) -> None:
        writes.append(frame)
        written.set()

    serving = asyncio.create_task(Relay(items(), _Wire()).serve(send))
    await asyncio.wait_for(written.wait(), 5)
    assert writes == [b"<0><1><2><3><4>"]  # written while the stream waits, not held for <5>
    more.set()
    await asyncio.wait_for(serving, 5)
    assert writes == [b"<0><1><2><3><4>", b"<5><end>"]


async def test_a_batch_is_bounded_when_the_stream_never_waits() -> None:
    writes: list[bytes] = []

    async def items() -> AsyncIterator[int]:
        for i in range(20_000):
            yield i

    async def send(frame: bytes) -> None:
        writes.append(frame)

    await asyncio.wait_for(Relay(items(), _Wire()).serve(send), 10)
    assert len(writes) > 1
    assert max(len(w) for w in writes) < 70 * 1024
    assert b"".join(writes) == b"".join(b"<%d>" % i for i in range(20_000)) + b"<end>"


async def test_a_failed_write_while_the_stream_waits_ends_the_stream() -> None:
    ended = asyncio.Event()

    async def items() -> AsyncIterator[int]:
        try:
            yield 0
            await asyncio.Event().wait()  # an upstream that is quiet: the write fails meanwhile
            yield 1
        finally:
            ended.set()

    async def send(frame: bytes) -> None:
        raise ConnectionResetError("the caller left")

    relay = Relay(items(), _Wire())
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(relay.serve(send), 5)
    assert ended.is_set()


async def test_cancelling_during_a_write_while_the_stream_waits_ends_the_stream() -> None:
    ended = asyncio.Event()
    writing = asyncio.Event()

    async def items() -> AsyncIterator[int]:
        try:
            yield 0
            await asyncio.Event().wait()
        finally:
            ended.set()

    async def send(frame: bytes) -> None:
        writing.set()
        await asyncio.Event().wait()  # a caller that does not read: the write waits

    serving = asyncio.create_task(Relay(items(), _Wire()).serve(send))
    await asyncio.wait_for(writing.wait(), 5)
    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await serving
    assert ended.is_set()


async def test_an_upstream_error_after_ready_frames_follows_them() -> None:
    writes: list[bytes] = []

    async def items() -> AsyncIterator[int]:
        yield 0
        yield 1
        raise GatewayError("boom")

    async def send(frame: bytes) -> None:
        writes.append(frame)

    await asyncio.wait_for(Relay(items(), _Wire()).serve(send), 5)
    assert b"".join(writes) == b"<0><1><error>"
