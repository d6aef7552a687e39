"""The HTTP front of the state service.

    GET    /v1/state/{scope}/{key}          the value, with its ETag header
    PUT    /v1/state/{scope}/{key}          {"value": <JSON>} or {"bytes": "<base64>"}, optional "ttl"
    DELETE /v1/state/{scope}/{key}          204, or 404 when absent
    GET    /v1/state/{scope}?prefix=&limit=&pageToken=   {"entries": [...], "nextPageToken": ...}

``If-Match: "<etag>"`` (or ``*``) makes a PUT or DELETE conditional and
``If-None-Match: *`` makes a PUT create-only; a failed condition is 409 with
code ABORTED. ``?scopeId=`` names a scope id explicitly (refused with 403 unless
it is the caller's own or the scope is granted). Errors are the gateway's usual
``{"error": ErrorDetail}`` bodies.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.config.schema import parse_duration
from gateway.model import InvalidRequest, NotFound
from gateway.propagation import context_from_headers
from gateway.server.json_body import read_json, whole_number
from gateway.server.request_keys import GUARD_KEY, HEADERS_KEY, IDENTITY_KEY, REQUEST_ID_KEY
from gateway.server.state_grpc import after_from_token, page_token
from gateway.state.access import ScopeAccess, parse_scope
from gateway.state.store import ANY_ETAG, ScopeRef, StateRecord, StateStore, StateValue

STORE_KEY = web.AppKey("state_store", StateStore)
ACCESS_KEY = web.AppKey("state_access", ScopeAccess)
_PUT_FIELDS = {"value", "bytes", "ttl"}


def _timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def entry_json(scope: ScopeRef, record: StateRecord) -> dict[str, Any]:
    """One entry, in the lowerCamelCase JSON of agentgateway.v1.StateEntry but with
    the decoded ``value`` (or base64 ``bytes``)."""
    out: dict[str, Any] = {"scope": scope.scope.value, "scopeId": scope.id, "key": record.key}
    if record.value.is_json:
        out["value"] = record.value.json()
    else:
        out["bytes"] = base64.b64encode(record.value.payload).decode()
    out["etag"] = record.etag
    out["version"] = record.version
    out["updateTime"] = _timestamp(record.updated_at)
    if record.expires_at is not None:
        out["expireTime"] = _timestamp(record.expires_at)
    return out


def _quoted(etag: str) -> str:
    return f'"{etag}"'


def _etag_condition(header: str | None, name: str) -> str | None:
    """The one ETag (or ``*``) an If-Match / If-None-Match header names."""
    if header is None:
        return None
    value = header.strip()
    if value == ANY_ETAG:
        return value
    if value.startswith("W/"):
        raise InvalidRequest(f"{name} needs a strong ETag, not a weak one: {value!r}")
    if "," in value:
        raise InvalidRequest(f"{name} takes one ETag (or *), got {value!r}")
    return value.strip('"') or None


def _scope(request: web.Request) -> ScopeRef:
    # The headers as the listener's guard believes them: an untrusted x-user-id is already replaced.
    headers: dict[str, str] = request[HEADERS_KEY]
    scope = parse_scope(request.match_info["scope"])
    explicit = request.query.get("scopeId", "")
    granted = request.app[GUARD_KEY].granted_scopes(request[IDENTITY_KEY])
    return request.app[ACCESS_KEY].resolve(scope, explicit, context_from_headers(headers), granted)


async def _put_body(request: web.Request) -> tuple[StateValue, float | None]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidRequest('the body must be a JSON object: {"value": ...} or {"bytes": "<base64>"}')
    if unknown := set(body) - _PUT_FIELDS:
        raise InvalidRequest(f"unknown fields in the body: {', '.join(sorted(unknown))} (expected value, bytes, ttl)")
    if ("value" in body) == ("bytes" in body):
        raise InvalidRequest('the body needs exactly one of "value" (any JSON) or "bytes" (base64)')
    if "bytes" in body:
        if not isinstance(body["bytes"], str):
            raise InvalidRequest('"bytes" must be a base64 string')
        try:
            value = StateValue.of_bytes(base64.b64decode(body["bytes"], validate=True))
        except binascii.Error:
            raise InvalidRequest('"bytes" is not valid base64') from None
    else:
        value = StateValue.of_json(body["value"])
    ttl = None
    if body.get("ttl") is not None:
        try:
            ttl = parse_duration(body["ttl"])
        except ValueError as exc:
            raise InvalidRequest(f'"ttl": {exc}') from None
        if ttl <= 0:
            raise InvalidRequest('"ttl" must be positive')
    return value, ttl


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", "100")
    if (number := whole_number(raw)) is None:
        raise InvalidRequest(f"limit must be a whole number between 1 and 1000, got {raw[:40]!r}")
    return number


async def get_state(request: web.Request) -> web.StreamResponse:
    scope = _scope(request)
    key = request.match_info["key"]
    record = await request.app[STORE_KEY].get(scope, key)
    if record is None:
        raise NotFound(f"no state key {key!r} in the {scope.scope.value} scope")
    headers = {"etag": _quoted(record.etag), "cache-control": "no-store"}
    if _etag_condition(request.headers.get("if-none-match"), "If-None-Match") in (record.etag, ANY_ETAG):
        return web.Response(status=304, headers=headers)
    return web.json_response(_answer(request, entry_json(scope, record)), headers=headers)


async def put_state(request: web.Request) -> web.Response:
    scope = _scope(request)
    if_match = _etag_condition(request.headers.get("if-match"), "If-Match")
    if_none_match = _etag_condition(request.headers.get("if-none-match"), "If-None-Match")
    if if_none_match not in (None, ANY_ETAG):
        raise InvalidRequest("a PUT takes If-None-Match: * (create-only) and nothing else")
    value, ttl = await _put_body(request)
    store = request.app[STORE_KEY]
    record = await store.put(
        scope, request.match_info["key"], value, if_match=if_match, if_none_match=if_none_match == ANY_ETAG, ttl=ttl
    )
    status = 201 if record.version == 1 else 200
    answer = _answer(request, entry_json(scope, record))
    return web.json_response(answer, status=status, headers={"etag": _quoted(record.etag)})


async def delete_state(request: web.Request) -> web.Response:
    scope = _scope(request)
    key = request.match_info["key"]
    if_match = _etag_condition(request.headers.get("if-match"), "If-Match")
    if not await request.app[STORE_KEY].delete(scope, key, if_match=if_match):
        raise NotFound(f"no state key {key!r} in the {scope.scope.value} scope")
    return web.Response(status=204)


async def list_state(request: web.Request) -> web.Response:
    scope = _scope(request)
    page = await request.app[STORE_KEY].list(
        scope,
        request.query.get("prefix", ""),
        after=after_from_token(request.query.get("pageToken", "")),
        limit=_limit(request),
    )
    body: dict[str, Any] = _answer(request, {"entries": [entry_json(scope, r) for r in page.records]})
    if page.next_after is not None:
        body["nextPageToken"] = page_token(page.next_after)
    return web.json_response(body, headers={"cache-control": "no-store"})


def _answer(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    """An answer body, naming its request like every answer of the gateway."""
    body["requestId"] = request[REQUEST_ID_KEY]
    return body


def add_state_routes(app: web.Application, store: StateStore, access: ScopeAccess) -> None:
    """Serve the state API from ``app`` (its error middleware shapes the failures)."""
    app[STORE_KEY] = store
    app[ACCESS_KEY] = access
    app.router.add_get("/v1/state/{scope}", list_state)
    app.router.add_get("/v1/state/{scope}/{key:.+}", get_state)
    app.router.add_put("/v1/state/{scope}/{key:.+}", put_state)
    app.router.add_delete("/v1/state/{scope}/{key:.+}", delete_state)
