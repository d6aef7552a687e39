from __future__ import annotations

import pytest

from gateway.protocols.sse import SseEvent, SseParser, SseProtocolError, format_sse


def feed_all(chunks: list[bytes], **kwargs: int) -> list[SseEvent]:
    parser = SseParser(**kwargs)
    return [event for chunk in chunks for event in parser.feed(chunk)]


def test_events_with_names_ids_and_multiline_data() -> None:
    raw = b"event: values\r\nid: 7\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n: keep-alive\n\ndata: plain\n\n"
    assert feed_all([raw]) == [SseEvent("values", '{"a":\n1}', "7"), SseEvent("message", "plain", "7")]


def test_line_ends_split_across_chunks() -> None:
    raw = b"event: a\r\ndata: x\r\n\r\nevent: b\rdata: y\r\rdata: z\n\n"
    for split in range(1, len(raw)):
        events = feed_all([raw[:split], raw[split:]])
        assert [(e.event, e.data) for e in events] == [("a", "x"), ("b", "y"), ("message", "z")], split


def test_byte_at_a_time_and_utf8() -> None:
    raw = "data: héllo ✓\n\n".encode()
    assert feed_all([raw[i : i + 1] for i in range(len(raw))]) == [SseEvent("message", "héllo ✓")]


def test_event_without_data_is_not_dispatched() -> None:
    assert feed_all([b"event: ping\n\n", b"retry: 10\n\n"]) == []


def test_oversized_event_is_an_error() -> None:
    parser = SseParser(max_event_bytes=64)
    with pytest.raises(SseProtocolError):
        parser.feed(b"data: " + b"x" * 100 + b"\n")
    with pytest.raises(SseProtocolError):
        SseParser(max_event_bytes=64).feed(b"data: " + b"y" * 100)  # no line end yet: still bounded


def test_format_round_trip() -> None:
    wire = format_sse("line1\nline2", "result", "3")
    assert feed_all([wire]) == [SseEvent("result", "line1\nline2", "3")]
