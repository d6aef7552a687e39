"""Compatibility: the Python client is its own distribution now, ``agent-gateway-client``
(clients/python), imported as :mod:`agentgateway_client`. This name re-exports it for code
written before the split. The gateway's distribution ships the package too (its model is
defined there); its MCP tools also need httpx, which only the client's distribution requires."""

try:
    from agentgateway_client import *  # noqa: F403
    from agentgateway_client import __all__ as __all__
except ModuleNotFoundError as exc:  # an install without the package
    raise ModuleNotFoundError(
        "the Python client is the agent-gateway-client distribution: pip install ./clients/python, "
        "then import agentgateway_client",
        name=exc.name,
    ) from exc
