"""Compatibility: the Python client is its own distribution now, ``agent-gateway-client``
(clients/python), imported as :mod:`agentgateway_client`. This name re-exports it for code
written before the split; it needs that distribution installed (``make install`` does)."""

from agentgateway_client import *  # noqa: F403
from agentgateway_client import __all__ as __all__
