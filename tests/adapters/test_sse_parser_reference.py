"""The SSE parser against a line-at-a-time reference of the WHATWG rules: any bytes, split
anywhere, give the same events (and the same refusals); and json_or_none is json.loads or None."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.adapters.kit import json_or_none
from gateway.protocols.sse import SseEvent, SseParser, SseProtocolError

PROPERTY = settings(max_examples=300, deadline=None)


def reference(raw: bytes, max_bytes: int) -> list[SseEvent] | str:
    """The event-stream rules, a whole stream at once (the trailing event without a blank line dropped)."""
    text = raw.decode("utf-8", errors="replace").removeprefix("\ufeff")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")[:-1]  # the last is unterminated
    events: list[SseEvent] = []
    kind, data, last_id, retry = "", [], None, None
    for line in lines:
        if not line:
            if data:
                events.append(SseEvent(kind or "message", "\n".join(data), last_id, retry))
                data, retry = [], None
            kind = ""
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
            if sum(len(d) + 1 for d in data) > max_bytes:
                return "too large"
        elif name == "event":
            kind = value
        elif name == "id" and "\0" not in value:
            last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            retry = int(value)
    return events


def parsed(chunks: list[bytes], max_bytes: int) -> list[SseEvent] | str:
    parser = SseParser(max_event_bytes=max_bytes)
    events: list[SseEvent] = []
    try:
        for chunk in chunks:
            events += parser.feed(chunk)
    except SseProtocolError:
        return "too large"
    return events


# Field names, line ends of every kind, and UTF-8 (whole, cut, a BOM) to split anywhere.
PIECES = [b"data: ", b"data:", b"event: ", b"id: ", b"retry: ", b": c", b"\n", b"\r", b"\r\n", b"x", b"{}", b"7"]
PIECES += [b"\xc3\xa9", b"\xc3", b"\xef\xbb\xbf", b"\x00", b" ", b"\xe2\x9c"]
pieces = st.sampled_from(PIECES)


@PROPERTY
@given(st.lists(pieces, max_size=40), st.lists(st.integers(0, 200), max_size=4))
def test_the_parser_matches_the_reference_however_the_bytes_are_split(tokens: list[bytes], cuts: list[int]) -> None:
    raw = b"".join(tokens)
    edges = sorted({min(c, len(raw)) for c in cuts})
    chunks = [raw[a:b] for a, b in zip([0, *edges], [*edges, len(raw)], strict=True)]
    expected = reference(raw, 1_000_000)
    assert parsed(chunks, 1_000_000) == expected
    assert parsed([raw[i : i + 1] for i in range(len(raw))], 1_000_000) == expected


def test_many_events_in_one_chunk_all_come_out() -> None:
    raw = b"".join(b'data: {"n": %d}\n\n' % i for i in range(5000))
    assert [e.data for e in parsed([raw], 1 << 20)] == [f'{{"n": {i}}}' for i in range(5000)]


@PROPERTY
@given(st.text(max_size=12) | st.sampled_from([' {"a": 1}', '{"a": 1} ', "[1] x", "\ufeff1", "1e400", "nul", '"s"']))
def test_json_or_none_is_json_loads_or_none(text: str) -> None:
    expected: Any
    try:
        expected = json.loads(text)
    except json.JSONDecodeError:
        expected = None
    assert repr(json_or_none(text)) == repr(expected)
