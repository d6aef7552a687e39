"""agent-gateway: a cross-framework agent gateway and sidecar proxy."""

__version__ = "0.1.0"
