"""Compatibility: the Python client is its own distribution now, ``agent-gateway-client``
(clients/python), imported as :mod:`agentgateway_client`. This name re-exports it for code
written before the split; it needs that distribution installed (``make install`` does)."""

try:
    from agentgateway_client import *  # noqa: F403
    from agentgateway_client import __all__ as __all__
except ModuleNotFoundError as exc:  # the gateway's own distribution (its image) does not ship the client
    raise ModuleNotFoundError(
        "the Python client is the agent-gateway-client distribution: pip install ./clients/python, "
        "then import agentgateway_client",
        name=exc.name,
    ) from exc
