"""HTTP semantics every route shares (RFC 9110): Allow on 405, OPTIONS, CORS, and the request id on every answer."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import GatewayFactory

AGENTS = """
agents:
  echo: {{kind: http, endpoint: "{echo}"}}
  down: {{kind: http, endpoint: "http://127.0.0.1:1"}}
"""
CORS = """
listeners:
  http:
    address: "127.0.0.1:0"
    cors: {allow_origins: ["https://app.example.com"], allow_methods: [GET, POST], allow_credentials: true}
  grpc: {address: "127.0.0.1:0"}
"""


async def test_405_names_the_allowed_methods_with_a_fitting_code(gateway_factory: GatewayFactory, echo_url: str) -> None:
    async with gateway_factory(AGENTS.format(echo=echo_url)) as gw, aiohttp.ClientSession() as http:
        async with http.get(f"http://{gw.addresses.http}/v1/agents/echo/invoke") as response:
            body = await response.json()
            assert response.status == 405
            assert response.headers["allow"] == "OPTIONS, POST"
            assert body["error"]["code"] == "UNIMPLEMENTED"
            assert "POST" in body["error"]["message"]
            assert body["error"]["requestId"] == response.headers["x-request-id"] != ""
        async with http.delete(f"http://{gw.addresses.http}/v1/state/session/k") as response:
            assert response.status != 405  # DELETE is served there: the Allow sets are per resource
        async with http.patch(f"http://{gw.addresses.http}/v1/state/session/k") as response:
            assert response.status == 405
            assert set(response.headers["allow"].split(", ")) == {"DELETE", "GET", "HEAD", "OPTIONS", "PUT"}


async def test_options_answers_what_the_resource_supports(gateway_factory: GatewayFactory, echo_url: str) -> None:
    async with gateway_factory(AGENTS.format(echo=echo_url)) as gw, aiohttp.ClientSession() as http:
        async with http.options(f"http://{gw.addresses.http}/v1/agents") as response:
            assert response.status == 204
            assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
            assert response.headers["x-request-id"]
            # CORS is off by default: no browser may read answers across origins.
            assert "access-control-allow-origin" not in response.headers


ROUTES_THAT_FAIL = [
    ("POST", "/v1/agents/echo/invoke", b"{not json", 400),
    ("POST", "/v1/agents/echo/invoke", b'{"messages": [], "bogus": 1}', 400),
    ("POST", "/v1/agents/echo/invoke", b'{"messages": []}', 400),
    ("POST", "/v1/invoke", b'{"messages": [{"parts": [{"text": "x"}]}]}', 400),
    ("POST", "/v1/agents/ghost/invoke", b'{"messages": [{"parts": [{"text": "x"}]}]}', 404),
    ("POST", "/v1/agents/down/invoke", b'{"messages": [{"parts": [{"text": "x"}]}]}', 503),
    ("GET", "/v1/state/nowhere/k", None, 400),
    ("PUT", "/v1/state/session/k", b"x", 400),
    ("POST", "/v1/runs", b"{", 400),
    ("GET", "/v1/runs/no-such-run", None, 404),
    ("GET", "/v1/proxy/ghost/x", None, 404),
    ("GET", "/nothing/here", None, 404),
]
# Successful answers whose bodies name the request too.
ROUTES_THAT_ANSWER = [
    ("GET", "/v1/agents", None, 200),
    ("PUT", "/v1/state/session/k", b'{"value": 1}', 201),
    ("GET", "/v1/state/session", None, 200),
    ("POST", "/v1/events/events.x", b'{"n": 1}', 202),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), ROUTES_THAT_FAIL + ROUTES_THAT_ANSWER)
async def test_every_answer_carries_the_request_id_in_header_and_body(
    gateway_factory: GatewayFactory, echo_url: str, method: str, path: str, body: bytes | None, status: int
) -> None:
    async with gateway_factory(AGENTS.format(echo=echo_url)) as gw, aiohttp.ClientSession() as http:
        async with http.request(
            method, f"http://{gw.addresses.http}{path}", data=body, headers={"x-session-id": "s1"}
        ) as response:
            assert response.status == status, await response.text()
            request_id = response.headers["x-request-id"]
            assert request_id
            answer = await response.json()
            if status >= 400:
                error = answer["error"]
                assert error["requestId"] == request_id
                if "/agents/echo/" in path:
                    assert error["agent"] == "echo"
            else:
                assert answer["requestId"] == request_id
        # A caller's own id is kept on errors too.
        headers = {"x-request-id": "caller-chosen-1", "x-session-id": "s1"}
        async with http.request(method, f"http://{gw.addresses.http}{path}", data=body, headers=headers) as response:
            assert response.headers["x-request-id"] == "caller-chosen-1"
            answer = await response.json()
            assert (answer["error"] if status >= 400 else answer)["requestId"] == "caller-chosen-1"


async def test_cors_preflight_and_answers(gateway_factory: GatewayFactory, echo_url: str) -> None:
    origin = "https://app.example.com"
    async with gateway_factory(CORS + AGENTS.format(echo=echo_url)) as gw, aiohttp.ClientSession() as http:
        url = f"http://{gw.addresses.http}/v1/agents/echo/invoke"
        preflight = {
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "Content-Type, traceparent",
        }
        async with http.options(url, headers=preflight) as response:
            assert response.status == 204
            assert response.headers["access-control-allow-origin"] == origin
            assert response.headers["access-control-allow-credentials"] == "true"
            assert response.headers["access-control-allow-methods"] == "GET, POST"
            assert response.headers["access-control-allow-headers"] == "content-type, traceparent"
            assert response.headers["access-control-max-age"] == "600"
            assert "Origin" in response.headers["vary"]
        refused = [
            {**preflight, "origin": "https://evil.example.com"},
            {**preflight, "access-control-request-method": "DELETE"},
            {**preflight, "access-control-request-headers": "x-evil"},
        ]
        for headers in refused:
            async with http.options(url, headers=headers) as response:
                assert response.status == 403
                assert (await response.json())["error"]["code"] == "PERMISSION_DENIED"
                assert "access-control-allow-methods" not in response.headers  # the browser refuses the call
                if headers["origin"] != origin:
                    assert "access-control-allow-origin" not in response.headers
        body = b'{"messages": [{"parts": [{"text": "hi"}]}]}'
        async with http.post(url, data=body, headers={"origin": origin}) as response:
            assert response.status == 200
            assert response.headers["access-control-allow-origin"] == origin
            assert "x-request-id" in response.headers["access-control-expose-headers"]
        async with http.post(url, data=b"{", headers={"origin": origin}) as response:
            assert response.status == 400  # errors are readable by the page too
            assert response.headers["access-control-allow-origin"] == origin
        async with http.post(url, data=body, headers={"origin": "https://evil.example.com"}) as response:
            assert "access-control-allow-origin" not in response.headers


def test_credentials_with_any_origin_is_a_config_error() -> None:
    from gateway.config import ConfigError, load_config_text

    text = "listeners:\n  http:\n    cors: {allow_origins: ['*'], allow_credentials: true}\n"
    with pytest.raises(ConfigError, match=r"gw.yaml:3: listeners.http.cors: allow_credentials needs named origins"):
        load_config_text(text, "gw.yaml")
