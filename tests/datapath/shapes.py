"""Each adapter's wire shape, spoken by the fault upstream: the reply that carries the agent's
text, built to an exact size in bytes, plus the small replies around it (a CrewAI kickoff, an
A2A agent card). ``Shape.responder`` puts the fault settings on the reply that carries the text.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.helpers.fault_upstream import Reply, Responder, SeenRequest, json_reply

KIB = 1024
MIB = 1024 * 1024
# The sizes the issue names: empty, small, around the old 64 KiB read, large, the 32 MiB cap and past it.
SIZES = {"0": 0, "1KB": 1000, "64KB": 64 * KIB, "65KB": 65 * KIB, "1MB": MIB}
CAP = 32 * MIB
OVER_CAP = 33 * MIB


_ALPHABET = b"abcdefghijklmnopqrstuvwxyz0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Random bytes become letters, and about 1 in 64 becomes a two-byte "é" (a chunk boundary may split it).
_TABLE = bytes(0 if i % 64 == 0 else _ALPHABET[i % len(_ALPHABET)] for i in range(256))


def filler(size: int, seed: int) -> str:
    """Text of exactly ``size`` UTF-8 bytes with multi-byte characters in random places, so a
    decoding, joining or truncating mistake shows (fast enough for 33 MiB)."""
    raw = random.Random(seed).randbytes(size).translate(_TABLE).replace(b"\0", "é".encode())[:size]
    text = raw.decode("utf-8", errors="ignore")  # a cut "é" at the end goes...
    text += "a" * (size - len(text.encode()))  # ...and ASCII fills up to the size
    assert len(text.encode()) == size
    return text


def sized(envelope: Callable[[str], Any], size: int, seed: int = 7) -> tuple[bytes, str]:
    """(JSON body of exactly ``size`` bytes, the text inside it); size 0 is an empty body."""
    if size == 0:
        return b"", ""
    overhead = len(json.dumps(envelope(""), separators=(",", ":")).encode())
    if size < overhead:
        raise ValueError(f"{size} bytes is smaller than the envelope ({overhead})")
    text = filler(size - overhead, seed)
    body = json.dumps(envelope(text), separators=(",", ":"), ensure_ascii=False).encode()
    assert len(body) == size, (len(body), size)
    return body, text


@dataclass(frozen=True)
class Shape:
    """One adapter's protocol: the agent YAML and the replies for a text."""

    kind: str
    envelope: Callable[[str], Any]
    # (request) -> True when this request is the one whose reply carries the text.
    is_main: Callable[[SeenRequest], bool]
    # Replies to the other requests of a call (kickoff, agent card), given the upstream's URL.
    side: Callable[[SeenRequest, str], Reply]
    options: str = ""

    def agent_yaml(self, name: str, url: str) -> str:
        options = f", options: {{{self.options}}}" if self.options else ""
        return f'  {name}: {{kind: {self.kind}, endpoint: "{url}"{options}}}\n'

    def responder(self, main: Reply, url: Callable[[], str]) -> Responder:
        def respond(request: SeenRequest) -> Reply:
            return main if self.is_main(request) else self.side(request, url())

        return respond

    def reply(self, size: int, **faults: Any) -> tuple[Reply, str]:
        key = (self.kind, size)
        if key not in _BODIES:  # the big ones take a second or two to build: once per run
            _BODIES[key] = sized(self.envelope, size)
        body, text = _BODIES[key]
        return dataclasses.replace(json_reply(body), **faults), text


_BODIES: dict[tuple[str, int], tuple[bytes, str]] = {}


def _no_side(request: SeenRequest, url: str) -> Reply:
    return Reply(status=404, body=b"not here")


def _crew_side(request: SeenRequest, url: str) -> Reply:
    return json_reply(b'{"kickoff_id":"k-1"}')


def _card_side(request: SeenRequest, url: str) -> Reply:
    card = {"name": "a2a", "supportedInterfaces": [{"url": f"{url}/rpc", "protocolBinding": "JSONRPC"}]}
    return json_reply(json.dumps(card).encode())


SHAPES = {
    "http": Shape(
        "http",
        lambda text: {"messages": [{"role": "ROLE_AGENT", "parts": [{"text": text}]}]},
        lambda r: r.path == "/invoke",
        _no_side,
    ),
    "langgraph": Shape(
        "langgraph",
        lambda text: {"messages": [{"type": "human", "content": "hi"}, {"type": "ai", "content": text}]},
        lambda r: r.path == "/runs/wait",
        _no_side,
    ),
    "mastra": Shape(
        "mastra",
        lambda text: {"text": text, "finishReason": "stop"},
        lambda r: r.path.endswith("/generate"),
        _no_side,
    ),
    "crewai": Shape(
        "crewai",
        lambda text: {"state": "SUCCESS", "result": {"output": text}},
        lambda r: r.path.startswith("/status/"),
        _crew_side,
        options="poll_interval: 0.01",
    ),
    "a2a": Shape(
        "a2a",
        lambda text: {
            "jsonrpc": "2.0",
            "id": "1",
            "result": {"message": {"role": "ROLE_AGENT", "parts": [{"text": text}], "messageId": "m-1"}},
        },
        lambda r: r.path == "/rpc",
        _card_side,
    ),
}


def sse_body(text: str, piece: int = 16 * KIB) -> bytes:
    """The HTTP adapter's event stream for ``text``: one ``delta`` event per ``piece`` characters."""
    frames = []
    for at in range(0, len(text), piece):
        event = {"type": "delta", "message": {"role": "ROLE_AGENT", "parts": [{"text": text[at : at + piece]}]}}
        frames.append(b"data: " + json.dumps(event, ensure_ascii=False).encode() + b"\n\n")
    return b"".join(frames)


def replies(size: int, **faults: Any) -> tuple[Responder, str]:
    """The HTTP adapter's JSON reply (``/invoke``) and event stream (``/stream``) for one text."""
    invoke, text = SHAPES["http"].reply(size, **faults)
    stream = dataclasses.replace(invoke, body=sse_body(text), headers={"content-type": "text/event-stream"})

    def respond(request: SeenRequest) -> Reply:
        return stream if request.path == "/stream" else invoke

    return respond, text


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"


@dataclass(frozen=True)
class StreamShape:
    """An adapter's event stream: which request opens it, one frame per text piece, the end."""

    is_stream: Callable[[SeenRequest], bool]
    frame: Callable[[str], bytes]
    end: bytes = b""

    def body(self, text: str, piece: int = 16 * KIB) -> bytes:
        frames = [self.frame(text[at : at + piece]) for at in range(0, len(text), piece)]
        return b"".join(frames) + self.end


STREAM_SHAPES = {
    "http": StreamShape(
        lambda r: r.path == "/stream",
        lambda piece: _sse({"type": "delta", "message": {"role": "ROLE_AGENT", "parts": [{"text": piece}]}}),
    ),
    "langgraph": StreamShape(
        lambda r: r.path == "/runs/stream",
        lambda piece: _sse([{"type": "AIMessageChunk", "content": piece}, {"langgraph_node": "agent"}], "messages"),
    ),
    "mastra": StreamShape(
        lambda r: r.path.endswith("/stream"),
        lambda piece: _sse({"type": "text-delta", "payload": {"text": piece}}),
        b"data: [DONE]\n\n",
    ),
    "a2a": StreamShape(
        lambda r: r.path == "/rpc",
        lambda piece: _sse(
            {
                "jsonrpc": "2.0",
                "id": "1",
                "result": {"artifactUpdate": {"taskId": "t-1", "artifact": {"parts": [{"text": piece}]}}},
            }
        ),
    ),
}


def stream_responder(kind: str, text: str, url: Callable[[], str], **faults: Any) -> Responder:
    """The adapter's stream of ``text`` (with ``faults``) and its side replies (an agent card)."""
    shape = STREAM_SHAPES[kind]
    stream = Reply(body=shape.body(text), headers={"content-type": "text/event-stream"}, **faults)

    def respond(request: SeenRequest) -> Reply:
        return stream if shape.is_stream(request) else SHAPES[kind].side(request, url())

    return respond
