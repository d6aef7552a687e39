"""The MCP gateway: federated tool servers and virtual servers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from gateway.config.base import Duration, Name, Strict

McpRevision = Literal["2026-07-28", "2025-11-25"]
_MCP_REVISIONS: tuple[McpRevision, ...] = ("2026-07-28", "2025-11-25")


class McpUpstream(Strict):
    """A tool server the gateway federates: a Streamable HTTP endpoint (``url``) or a
    stdio server it launches and supervises (``command``)."""

    # The upstream's MCP endpoint (http://host:port/mcp).
    url: str | None = None
    # Or a stdio server the gateway launches: the program (`python`: the gateway's own interpreter).
    command: str | None = None
    # stdio: the program's arguments.
    args: list[str] = Field(default_factory=list)
    # stdio: environment variables added to the gateway's own for the program.
    env: dict[str, str] = Field(default_factory=dict)
    # Credentials the gateway sends to this upstream (for example authorization: Bearer ${TOKEN});
    # a client's own token never goes upstream.
    headers: dict[str, str] = Field(default_factory=dict)
    # Named policies (top-level `policies`), merged in order; `default` applies when none is named.
    policies: list[Name] = Field(default_factory=list)
    # The MCP revision spoken to it; unset: 2026-07-28 when `server/discover` says the upstream speaks it,
    # else the 2025-11-25 handshake.
    protocol_version: McpRevision | None = None
    # The MCP revisions clients may reach this upstream under; a virtual server offers only the ones all
    # its upstreams share. Default: both, the gateway bridging them (it holds a 2025-11-25 upstream's
    # session itself, and drives a 2026-07-28 upstream's input requests for a 2025-11-25 client).
    versions: list[McpRevision] = Field(default_factory=lambda: list(_MCP_REVISIONS), min_length=1)
    # Tools retried on failure even without a readOnlyHint/idempotentHint annotation.
    idempotent_tools: list[str] = Field(default_factory=list)
    # Default time budget of one call when the caller sets none.
    timeout: Duration | None = None
    # stdio: restarts in a row after crashes before the upstream is given up.
    max_restarts: int = Field(default=5, ge=0)
    # stdio: the wait before a restart (doubling with each crash in a row, up to 30s).
    restart_backoff: Duration = Field(default=0.5, gt=0)

    @model_validator(mode="after")
    def _one_transport(self) -> McpUpstream:
        if (self.url is None) == (self.command is None):
            raise ValueError("give exactly one of 'url' (Streamable HTTP) or 'command' (stdio)")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"an MCP upstream url must be http(s)://, got {self.url!r}")
        if self.command is None and (self.args or self.env):
            raise ValueError("'args' and 'env' are for stdio upstreams (with 'command')")
        return self


class McpMember(Strict):
    """One upstream in a virtual server: its names get ``<prefix>_`` in front."""

    # The upstream (a name under `mcp.upstreams`).
    upstream: Name
    # Defaults to the upstream's name; empty: names pass unchanged.
    prefix: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]{0,64}$")
    # Tool, prompt and resource names (upstream names, shell-style) exposed; empty: all.
    allow: list[str] = Field(default_factory=list)
    # Names hidden even when allowed.
    deny: list[str] = Field(default_factory=list)

    @property
    def name_prefix(self) -> str:
        prefix = self.upstream if self.prefix is None else self.prefix
        return f"{prefix}_" if prefix else ""


class McpVirtualServer(Strict):
    """An MCP server the gateway serves at ``/mcp/<name>``, merging upstreams."""

    upstreams: list[McpMember] = Field(min_length=1)
    # Shown to clients (initialize / server/discover).
    instructions: str = ""
    # Routed agents (or workflows) exposed as tools of this server: input the message, output the answer.
    agents: list[Name] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct_prefixes(self) -> McpVirtualServer:
        prefixes = [m.name_prefix for m in self.upstreams]
        for prefix in prefixes:
            if prefixes.count(prefix) > 1:
                raise ValueError(f"two upstreams share the prefix {prefix!r}: give each a distinct 'prefix'")
        return self


class McpStreams(Strict):
    """The SSE streams of 2025-11-25 sessions (a POST's answer, the GET stream), resumable with
    ``Last-Event-ID``: every event has an id, and a stream opens with a priming event."""

    # The reconnect delay the priming event's `retry` field asks of clients.
    retry: Duration = Field(default=1.0, gt=0)
    # Close a stream's connection after this long so the client polls (reconnects with Last-Event-ID)
    # instead of holding a connection open; unset: held until the answer.
    hold: Duration | None = Field(default=None, gt=0)
    # A stream no client follows is kept this long for a reconnect; then its call is cancelled upstream.
    resume_window: Duration = Field(default=30.0, gt=0)
    # The last events of one stream kept for a replay (the newest always, whatever its size).
    replay_events: int = Field(default=256, ge=1)
    # And at most this many bytes of them.
    replay_bytes: int = Field(default=1 << 20, ge=1)


class McpConfig(Strict):
    """The MCP gateway: upstream tool servers and the virtual servers clients connect to."""

    upstreams: dict[Name, McpUpstream] = Field(default_factory=dict)
    virtual_servers: dict[Name, McpVirtualServer] = Field(default_factory=dict)
    # The authorization server(s) named in the OAuth protected-resource metadata (RFC 9728).
    authorization_servers: list[str] = Field(default_factory=list)
    streams: McpStreams = Field(default_factory=McpStreams)
