"""The Model Context Protocol on the wire: JSON-RPC messages, both revisions' request
metadata, the mirrored ``Mcp-*`` headers and their checks (revisions 2026-07-28 and 2025-11-25).

No I/O here: the MCP front and the MCP upstream client both build on it, so the
two sides cannot drift.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MODERN = "2026-07-28"
LEGACY = "2025-11-25"
# Newest first: what server/discover and UnsupportedProtocolVersion errors list.
SUPPORTED_VERSIONS = (MODERN, LEGACY)
# Handshake-era versions an `initialize` may negotiate (older clients get the newest we speak).
HANDSHAKE_VERSIONS = (LEGACY, "2025-06-18", "2025-03-26")

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
HEADER_MISMATCH = -32020
MISSING_CLIENT_CAPABILITY = -32021
UNSUPPORTED_VERSION = -32022

META_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CLIENT_INFO = "io.modelcontextprotocol/clientInfo"
META_CLIENT_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
META_SERVER_INFO = "io.modelcontextprotocol/serverInfo"
META_SUBSCRIPTION = "io.modelcontextprotocol/subscriptionId"
# 2026-07-28: the log level of one request (absent: the server sends no log notifications).
META_LOG_LEVEL = "io.modelcontextprotocol/logLevel"
RESOURCE_UPDATED = "notifications/resources/updated"
# RFC 5424 severities, least severe first (logging/setLevel and notifications/message).
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")

HEADER_VERSION = "mcp-protocol-version"
HEADER_METHOD = "mcp-method"
HEADER_NAME = "mcp-name"
HEADER_SESSION = "mcp-session-id"
HEADER_PARAM_PREFIX = "mcp-param-"

# Methods whose `params.name` (or `params.uri`) is mirrored in `Mcp-Name`.
NAMED_METHODS = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
# Trace context carried in `_meta` (SEP-414) as well as in HTTP headers.
TRACE_KEYS = ("traceparent", "tracestate", "baggage")

_SENTINEL_START, _SENTINEL_END = "=?base64?", "?="


class McpError(Exception):
    """A JSON-RPC error to answer with, and the HTTP status it travels under."""

    def __init__(self, code: int, message: str, data: Any = None, status: int = 200) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.status = status

    def error_object(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


RequestId = str | int


@dataclass(frozen=True, slots=True)
class JsonRpcMessage:
    """One parsed JSON-RPC 2.0 message: a request (id and method), a notification (method only) or a response."""

    raw: Mapping[str, Any]
    id: RequestId | None = None
    method: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_request(self) -> bool:
        return self.method is not None and self.id is not None

    @property
    def is_notification(self) -> bool:
        return self.method is not None and self.id is None

    @property
    def meta(self) -> Mapping[str, Any]:
        meta = self.params.get("_meta")
        return meta if isinstance(meta, Mapping) else {}


def parse_message(body: Any) -> JsonRpcMessage:
    """A JSON-RPC message from decoded JSON, or an McpError saying what is wrong with it."""
    if not isinstance(body, Mapping) or body.get("jsonrpc") != "2.0":
        raise McpError(INVALID_REQUEST, 'expected one JSON-RPC 2.0 object with "jsonrpc": "2.0"', status=400)
    has_id = "id" in body
    request_id = body.get("id")
    if has_id and (isinstance(request_id, bool) or not isinstance(request_id, str | int)):
        raise McpError(INVALID_REQUEST, "a request id must be a string or an integer", status=400)
    method = body.get("method")
    if method is not None and not isinstance(method, str):
        raise McpError(INVALID_REQUEST, '"method" must be a string', status=400)
    params = body.get("params", {})
    if not isinstance(params, Mapping):
        raise McpError(INVALID_PARAMS, '"params" must be an object', status=400)
    if method is None and not ("result" in body or "error" in body):
        raise McpError(INVALID_REQUEST, 'a message needs a "method", a "result" or an "error"', status=400)
    return JsonRpcMessage(body, request_id if has_id else None, method, params)


def result_message(request_id: RequestId | None, result: Mapping[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": dict(result)}


def error_message(request_id: RequestId | None, error: McpError) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "error": error.error_object()}
    if request_id is not None:
        message["id"] = request_id
    return message


def notification(method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = dict(params)
    return message


def refusal(request: Mapping[str, Any], why: str = "") -> dict[str, Any]:
    """The error answering an upstream's request (sampling, elicitation) that its call's client cannot be asked."""
    reason = why or f"the client of this call cannot be asked {request.get('method')} (through the gateway)"
    return error_message(request.get("id"), McpError(INVALID_REQUEST, reason))


def unsupported_version(requested: str, supported: Sequence[str] = SUPPORTED_VERSIONS) -> McpError:
    """UnsupportedProtocolVersionError, naming the revisions this server does speak (HTTP 400)."""
    return McpError(
        UNSUPPORTED_VERSION,
        "Unsupported protocol version",
        {"supported": list(supported), "requested": requested},
        status=400,
    )


def encode_header_value(value: str) -> str:
    """The header form of ``value``: as is when it is plain visible ASCII, else the Base64 sentinel form."""
    plain = value.isascii() and all(0x20 <= ord(c) < 0x7F or c == "\t" for c in value)
    if plain and value == value.strip() and not (value.startswith(_SENTINEL_START) and value.endswith(_SENTINEL_END)):
        return value
    return _SENTINEL_START + base64.b64encode(value.encode()).decode() + _SENTINEL_END


def decode_header_value(value: str) -> str:
    """``value`` with the Base64 sentinel form decoded; McpError (HeaderMismatch) when it is malformed."""
    if not (value.startswith(_SENTINEL_START) and value.endswith(_SENTINEL_END)):
        return value
    try:
        return base64.b64decode(value[len(_SENTINEL_START) : -len(_SENTINEL_END)], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise McpError(
            HEADER_MISMATCH, "Header mismatch: a Base64-encoded header value is malformed", status=400
        ) from None


def is_followed_notification(method: str) -> bool:
    """A notification a client of an upstream passes on outside any request: list changes and resource updates."""
    return method.endswith("/list_changed") or method == RESOURCE_UPDATED


def request_headers(message: Mapping[str, Any], version: str) -> dict[str, str]:
    """The headers a client mirrors from ``message`` (``MCP-Protocol-Version``, and on 2026-07-28
    ``Mcp-Method`` and ``Mcp-Name``)."""
    headers = {HEADER_VERSION: version}
    method = message.get("method")
    if version == MODERN and isinstance(method, str):
        headers[HEADER_METHOD] = method
        key = NAMED_METHODS.get(method)
        params = message.get("params") or {}
        if key is not None and isinstance(params.get(key), str):
            headers[HEADER_NAME] = encode_header_value(params[key])
    return headers


def check_modern_headers(
    message: JsonRpcMessage, headers: Mapping[str, str], supported: Sequence[str] = SUPPORTED_VERSIONS
) -> str:
    """Validate a 2026-07-28 request's mirrored headers against its body (lower-case ``headers``), for a
    server speaking the ``supported`` revisions; returns the protocol version. Raises McpError (400) on
    any mismatch."""
    version = message.meta.get(META_VERSION)
    header_version = headers.get(HEADER_VERSION)
    if not isinstance(version, str):
        raise McpError(INVALID_PARAMS, f"params._meta[{META_VERSION!r}] is required", status=400)
    if version != MODERN or MODERN not in supported:
        raise unsupported_version(version, supported)
    if not isinstance(message.meta.get(META_CLIENT_CAPABILITIES), Mapping):
        raise McpError(
            INVALID_PARAMS, f"params._meta[{META_CLIENT_CAPABILITIES!r}] is required (an object)", status=400
        )
    if header_version != version:
        raise McpError(
            HEADER_MISMATCH,
            f"Header mismatch: MCP-Protocol-Version header value {header_version!r} "
            f"does not match body value {version!r}",
            status=400,
        )
    header_method = headers.get(HEADER_METHOD)
    if header_method != message.method:
        raise McpError(
            HEADER_MISMATCH,
            f"Header mismatch: Mcp-Method header value {header_method!r} does not match body value {message.method!r}",
            status=400,
        )
    key = NAMED_METHODS.get(message.method or "")
    if key is not None:
        body_name = message.params.get(key)
        raw = headers.get(HEADER_NAME)
        header_name = decode_header_value(raw) if raw is not None else None
        if header_name != body_name:
            raise McpError(
                HEADER_MISMATCH,
                f"Header mismatch: Mcp-Name header value {header_name!r} does not match body value {body_name!r}",
                status=400,
            )
    return version


def is_retry_safe(tool: Mapping[str, Any]) -> bool:
    """A tool the gateway may call twice: annotated read-only or idempotent (hints from the upstream)."""
    annotations = tool.get("annotations")
    if not isinstance(annotations, Mapping):
        return False
    return annotations.get("readOnlyHint") is True or annotations.get("idempotentHint") is True


def _header_value(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    return None  # numbers, objects and arrays are not mirrored


def param_headers(input_schema: Any, arguments: Any) -> dict[str, str]:
    """The ``Mcp-Param-<Name>`` headers (lower-case names, encoded values) a 2026-07-28 client mirrors
    from ``arguments`` for the properties ``input_schema`` marks with ``x-mcp-header`` (reachable
    through ``properties`` only; a value absent or null sends no header)."""
    headers: dict[str, str] = {}

    def walk(schema: Any, value: Any) -> None:
        properties = schema.get("properties") if isinstance(schema, Mapping) else None
        if not isinstance(properties, Mapping) or not isinstance(value, Mapping):
            return
        for key, sub in properties.items():
            if not isinstance(sub, Mapping) or key not in value:
                continue
            name = sub.get("x-mcp-header")
            if isinstance(name, str) and name:
                text = _header_value(value[key])
                if text is not None:
                    headers[HEADER_PARAM_PREFIX + name.lower()] = encode_header_value(text)
            walk(sub, value[key])

    walk(input_schema, arguments)
    return headers


def check_param_headers(input_schema: Any, arguments: Any, headers: Mapping[str, str]) -> None:
    """Raise HeaderMismatch (400) unless every ``Mcp-Param-*`` the body calls for is present and equal."""
    for name, expected in param_headers(input_schema, arguments).items():
        given = headers.get(name)
        if given is None or decode_header_value(given) != decode_header_value(expected):
            raise McpError(
                HEADER_MISMATCH,
                f"Header mismatch: {name} header value {given!r} does not match the body "
                f"(expected {decode_header_value(expected)!r})",
                status=400,
            )
