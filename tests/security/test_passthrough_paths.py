"""Defect 2: passthrough path traversal and path/query smuggling.

The attacks go out on a raw socket (an HTTP client library would normalise
``..`` before sending) and the assertions are on the request line the
recording upstream received: the caller's path and query bytes, below the
endpoint's base path ``/a``, or nothing at all and a 400 for the caller.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.model import InvalidRequest
from gateway.server.app import GatewayServer
from gateway.server.passthrough import upstream_url
from tests.conftest import GatewayFactory
from tests.security.recording import RecordingUpstream, recording_upstream


async def raw_request(address: str, target: str, method: str = "GET") -> tuple[int, Any]:
    """Send ``target`` exactly as written; returns (status, decoded JSON body or None)."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"{method} {target} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


@pytest.fixture
async def setup(gateway_factory: GatewayFactory) -> AsyncIterator[tuple[GatewayServer, RecordingUpstream]]:
    async with recording_upstream() as upstream:
        yaml_text = f"agents:\n  echo: {{kind: http, endpoint: '{upstream.url}/a'}}\n"
        async with gateway_factory(yaml_text) as gw:
            yield gw, upstream


VERBATIM = [
    ("x/a%2Fb?y=%20z", "/a/x/a%2Fb?y=%20z"),  # an encoded slash stays one segment; the query as sent
    ("x%3Fadmin=1", "/a/x%3Fadmin=1"),  # an encoded '?' is a name, not a query string
    ("%252e%252e/b/secret", "/a/%252e%252e/b/secret"),  # double encoding: decoded once it is a name
    ("sub/../ok?q=%3F&r=%26", "/a/sub/../ok?q=%3F&r=%26"),  # climbs back only into the base
    ("caf%C3%A9/%7Euser", "/a/caf%C3%A9/%7Euser"),  # no re-encoding either way
    ("", "/a/"),
]


@pytest.mark.parametrize(("tail", "expected"), VERBATIM)
async def test_path_and_query_bytes_reach_the_upstream_verbatim(
    setup: tuple[GatewayServer, RecordingUpstream], tail: str, expected: str
) -> None:
    gw, upstream = setup
    status, _ = await raw_request(gw.addresses.http, f"/v1/proxy/echo/{tail}")
    assert status == 200
    assert [r.target for r in upstream.requests] == [expected]


TRAVERSALS = [
    "..",
    "../b/secret",
    "%2e%2e/b/secret",
    "%2E%2E/b/secret",
    ".%2e/b/secret",
    "%2e./b/secret",
    "..%2fb/secret",
    "..%2Fb%2Fsecret",
    "%2E%2E%2Fb%2Fsecret",
    "x/../../b/secret",
    "x/..%2f..%2fb/secret",
    "x//..//../b",
    "..\\b\\secret",
    "..%5cb%5csecret",
    "..;/b/secret",
    "../b/secret?x=1",
]


@pytest.mark.parametrize("tail", TRAVERSALS)
async def test_a_path_above_the_base_is_refused_and_never_sent(
    setup: tuple[GatewayServer, RecordingUpstream], tail: str
) -> None:
    gw, upstream = setup
    status, body = await raw_request(gw.addresses.http, f"/v1/proxy/echo/{tail}")
    assert status == 400, body
    assert body["error"]["code"] == "INVALID_ARGUMENT"
    assert "above the agent's endpoint" in body["error"]["message"]
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("endpoint", "target", "expected"),
    [
        ("http://h:1", "/v1/proxy/a/x?q", "http://h:1/x?q"),
        ("http://h:1/", "/v1/proxy/a/x", "http://h:1/x"),
        ("http://h:1/base/", "/v1/proxy/a/x/%2F", "http://h:1/base/x/%2F"),
        ("https://h/base", "/v1/proxy/%61/x?y=%20", "https://h/base/x?y=%20"),  # the agent segment may be encoded
        ("http://h:1/base", "/v1/proxy/a/x#frag", "http://h:1/base/x"),
    ],
)
def test_upstream_url_joins_the_raw_tail_below_the_base(endpoint: str, target: str, expected: str) -> None:
    assert str(upstream_url(endpoint, target, "a")) == expected


def test_a_target_naming_another_agent_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="must start with /v1/proxy/a/"):
        upstream_url("http://h:1", "/v1/proxy/b/x", "a")
