"""Token usage as frameworks report it, in the shapes they use, read into one :class:`TokenUsage`.

LangChain/LangGraph messages carry ``usage_metadata`` (``input_tokens``/``output_tokens``); the
Vercel AI SDK and Mastra ``usage`` (``inputTokens``/``outputTokens``, or ``promptTokens``/
``completionTokens`` before AI SDK 5); OpenAI-style replies and CrewAI ``prompt_tokens``/
``completion_tokens``. Anything else is unknown (None), never a guess.
"""

from __future__ import annotations

from typing import Any

from gateway.model import TokenUsage

_SHAPES = (
    ("input_tokens", "output_tokens"),
    ("inputTokens", "outputTokens"),
    ("promptTokens", "completionTokens"),
    ("prompt_tokens", "completion_tokens"),
)


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value < 0 or value != value or value > 2**53:  # negative, NaN or absurd: not a count
        return None
    return int(value)


def token_usage(value: Any) -> TokenUsage | None:
    """The usage a framework's usage object states, or None when it states none in a known shape."""
    if not isinstance(value, dict):
        return None
    for input_key, output_key in _SHAPES:
        if input_key in value or output_key in value:
            inputs, outputs = _count(value.get(input_key, 0)), _count(value.get(output_key, 0))
            if inputs is None or outputs is None:
                return None
            return TokenUsage(inputs, outputs)
    return None
