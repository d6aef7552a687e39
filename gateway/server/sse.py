"""The old name of :mod:`gateway.server.sse_writer`, kept until the MCP front imports the new one."""

from gateway.server.sse_writer import KEEPALIVE_FRAME, SSE_HEADERS, SseWriter

__all__ = ["KEEPALIVE_FRAME", "SSE_HEADERS", "SseWriter"]
