"""The Python client an agent uses to call other agents, state, runs and MCP tools through its sidecar.

    from agentgateway_client import AgentClient

    async with AgentClient.from_env(inbound=request.headers) as client:
        result = await client.invoke("researcher", "find papers on otters")

Installed on its own (``agent-gateway-client``: grpcio, protobuf, the generated stubs
``agentgateway.v1``, opentelemetry-api and httpx), without the gateway's server dependencies.
"""

from agentgateway_client.agents import (
    DEFAULT_HTTP_TARGET,
    DEFAULT_HTTP_TARGET_ENV,
    DEFAULT_TARGET,
    DEFAULT_TARGET_ENV,
    AgentClient,
)
from agentgateway_client.model import (
    JSON,
    AgentDescription,
    ClientError,
    DataPart,
    Event,
    FilePart,
    Message,
    Part,
    Result,
    Role,
    StatusCode,
    TextPart,
)
from agentgateway_client.runs import RunInfo, RunsClient
from agentgateway_client.state import Scope, ScopeName, StateClient, StateRecord, StateValue
from agentgateway_client.tools import ToolResult, ToolsClient

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_HTTP_TARGET",
    "DEFAULT_HTTP_TARGET_ENV",
    "DEFAULT_TARGET",
    "DEFAULT_TARGET_ENV",
    "JSON",
    "AgentClient",
    "AgentDescription",
    "ClientError",
    "DataPart",
    "Event",
    "FilePart",
    "Message",
    "Part",
    "Result",
    "Role",
    "RunInfo",
    "RunsClient",
    "Scope",
    "ScopeName",
    "StateClient",
    "StateRecord",
    "StateValue",
    "StatusCode",
    "TextPart",
    "ToolResult",
    "ToolsClient",
]
