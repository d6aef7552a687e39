"""The A2A adapter's options and the protocol's names it uses: methods by version, task states
by what they mean to a caller, and the origin check that keeps credentials at home."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from yarl import URL

from gateway.adapters.base import AdapterOptions

CARD_PATH = "/.well-known/agent-card.json"
METHODS = {
    "1.0": ("SendMessage", "SendStreamingMessage"),
    "0.3": ("message/send", "message/stream"),
}
CANCEL_METHOD = {"1.0": "CancelTask", "0.3": "tasks/cancel"}
GET_METHOD = {"1.0": "GetTask", "0.3": "tasks/get"}
# Polling a task the agent answered before it ended: the first wait, doubling up to the last.
POLL_FIRST = 0.05
POLL_MAX = 1.0
TERMINAL = {"completed", "failed", "canceled", "rejected"}
# Terminal and interrupted states, normalized to the 0.3 spelling.
FAILED = {"failed", "canceled"}
REJECTED = {"rejected"}
# The task waits for the client.
WAITING = {"input-required", "auth-required"}
# Accepted but not done: a non-blocking server's answer to SendMessage.
PENDING = {"submitted", "working"}


class A2AOptions(AdapterOptions):
    protocol_version: Literal["1.0", "0.3"] = "1.0"
    # The JSON-RPC endpoint; discovered from the agent card when empty.
    rpc_url: str = ""
    card_path: str = CARD_PATH
    # Sent to the endpoint's origin (and rpc_url's) only: typically credentials.
    headers: dict[str, str] = Field(default_factory=dict)
    # Attempt a card's JSON-RPC URL on another origin than the endpoint (without the headers above).
    # Off: the card's path is called on the endpoint's origin, so a card cannot send calls elsewhere.
    follow_card_url: bool = False
    # The binding to the upstream: JSON-RPC, HTTP+JSON (REST), gRPC, or "auto" (the card's JSON-RPC
    # interface, else its HTTP+JSON one, else its gRPC one). With HTTP+JSON, rpc_url is the REST base URL.
    binding: Literal["auto", "JSONRPC", "HTTP+JSON", "GRPC"] = "auto"
    # The gRPC target (host:port) and tenant; from the card's GRPC interface when empty.
    grpc_target: str = ""
    grpc_tenant: str = ""
    # A unary call is sent as a stream and its frames assembled into the task, so abandoning it
    # (a cancelled run, a caller gone) cancels the upstream task too. Off for agents without streaming.
    invoke_by_stream: bool = True
    # A blocking SendMessage through the gateway's A2A front answers when this agent's own call did:
    # a task it left working (its executor returned, as a2a-sdk's and a2a-java's do) is answered
    # working, and followed (GetTask) until it ends. Off: answered once it ends or waits for input.
    mirror_blocking: bool = True


Origin = tuple[str, str, int | None]


def origin_of(url: URL) -> Origin:
    return (url.scheme.lower(), (url.host or "").lower(), url.port)
