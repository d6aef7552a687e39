"""What a tool asks the client during a streamed call (sampling, elicitation, roots), put to it on the
call's stream as requests of ours; its POSTed answers go back upstream."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from gateway.protocols import mcp
from gateway.server.mcp.sessions import McpSession

# Sends one message on the call's stream.
Emit = Callable[[dict[str, Any]], Awaitable[None]]

# What a tool may ask a client for during a call (2025-11-25 capabilities), and the capability each request needs.
INPUT_CAPABILITIES = ("sampling", "elicitation", "roots")
_CAPABILITY_OF = {"sampling/createMessage": "sampling", "elicitation/create": "elicitation", "roots/list": "roots"}
# How long a relayed request waits for the client's answer (a person may be answering an elicitation).
_INPUT_TIMEOUT = 600.0


def needs_input(answer: Mapping[str, Any]) -> bool:
    """A 2026-07-28 ``input_required`` result: the call is retried with the client's answers."""
    result = answer.get("result")
    return isinstance(result, Mapping) and result.get("resultType") == "input_required"


async def ask_one(emit: Emit, session: McpSession, method: str, params: Any) -> dict[str, Any]:
    """Send the client one request on the call's stream (an id of ours) and return its POSTed answer."""
    request_id = f"agw-{secrets.token_hex(8)}"
    waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    session.awaiting[request_id] = waiter
    try:
        await emit({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        return await asyncio.wait_for(waiter, _INPUT_TIMEOUT)
    except TimeoutError:
        raise mcp.McpError(mcp.INTERNAL_ERROR, f"the client did not answer {method}") from None
    finally:
        session.awaiting.pop(request_id, None)


async def answer_for_upstream(emit: Emit, session: McpSession | None, request: Mapping[str, Any]) -> dict[str, Any]:
    """A 2025-11-25 upstream's request during a call (sampling, elicitation), put to the client on the
    call's stream when it declared the capability; the upstream's answer (the client's, or a refusal)."""
    method = str(request.get("method"))
    capability = _CAPABILITY_OF.get(method)
    if session is None or capability is None or capability not in session.capabilities:
        return mcp.refusal(request)
    try:
        answer = await ask_one(emit, session, method, request.get("params") or {})
    except mcp.McpError as exc:
        return mcp.error_message(request.get("id"), exc)
    if isinstance(answer.get("result"), Mapping):
        return mcp.result_message(request.get("id"), answer["result"])
    error = answer.get("error")
    reason = error.get("message") if isinstance(error, Mapping) else None
    return mcp.refusal(request, f"the client refused {method}: {reason}")


async def ask_client(emit: Emit, session: McpSession, result: Mapping[str, Any]) -> dict[str, Any]:
    """Send each of an ``input_required`` result's requests to the client, wait for its answers,
    and return the retry's ``inputResponses`` (and ``requestState``, echoed)."""
    requests = result.get("inputRequests")
    responses: dict[str, Any] = {}
    for key, asked in (requests or {}).items() if isinstance(requests, Mapping) else ():
        if not isinstance(asked, Mapping) or not isinstance(asked.get("method"), str):
            raise mcp.McpError(mcp.INTERNAL_ERROR, f"the upstream asked for malformed input {key!r}")
        answer = await ask_one(emit, session, asked["method"], asked.get("params") or {})
        if not isinstance(answer.get("result"), Mapping):
            raw_error = answer.get("error")
            error: Mapping[str, Any] = raw_error if isinstance(raw_error, Mapping) else {}
            raise mcp.McpError(
                mcp.INTERNAL_ERROR, f"the client refused {asked['method']}: {error.get('message', '')}", error
            )
        responses[str(key)] = answer["result"]
    retry: dict[str, Any] = {"inputResponses": responses}
    if result.get("requestState") is not None:
        retry["requestState"] = result["requestState"]
    return retry
