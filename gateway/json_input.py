"""Decoding JSON a caller sent: UTF-8, bounded nesting, no unpaired surrogates.

Every front decodes caller JSON here (HTTP bodies, the A2A front, the state
service's ``json`` field on gRPC), so bad input is one ``InvalidRequest`` (400 /
INVALID_ARGUMENT) with a message, never a ``RecursionError`` or a
``UnicodeEncodeError`` further in. No I/O here.
"""

from __future__ import annotations

import json
import re
from typing import Any

from gateway.model import InvalidRequest

# protobuf refuses messages nested more than 100 levels, and each JSON object level costs
# three of them once in a Struct (Value, Struct, map entry): 32 keeps data that crosses
# protobuf (the gRPC front and adapters, runs, events) inside that limit with room to spare.
DEFAULT_MAX_DEPTH = 32
# The C decoder recurses once per level; far below Python's recursion limit.
MAX_DEPTH_LIMIT = 256

# A JSON string (escapes included): brackets inside one do not nest.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# Brackets only, all as "[" and "]": the kind does not change how deep the parser descends.
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_AS_SQUARE = bytes.maketrans(b"{}", b"[]")
# An escaped surrogate (\uD800-\uDFFF): the only way JSON text can produce an unpaired one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def nesting_exceeds(text: bytes, max_depth: int) -> bool:
    """Whether ``text`` opens more than ``max_depth`` arrays/objects inside each other
    (brackets inside strings do not count). Found without recursing, in C-speed passes."""
    if text.count(b"[") + text.count(b"{") <= max_depth:
        return False  # too few brackets to nest that deep: the common case, two scans
    brackets = (_STRING.sub(b"", text) if b'"' in text else text).translate(_AS_SQUARE, _NOT_BRACKETS)
    # Each pass removes the innermost pairs (one replace does not rescan what it joined): one
    # level of every nest, so max_depth passes empty anything that nests no deeper.
    for depth in range(max_depth + 1):
        if not brackets:
            return False
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            # Unbalanced (invalid JSON): closers, then openers the parser would descend into.
            return depth + len(brackets) - (brackets.rfind(b"]") + 1) > max_depth
        brackets = shorter
    return True


def _has_lone_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return True
    return False


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads(data: bytes | str, max_depth: int = DEFAULT_MAX_DEPTH, what: str = "request body") -> Any:
    """The decoded JSON; ``InvalidRequest`` naming ``what`` when it is not UTF-8 JSON, nests
    deeper than ``max_depth``, or holds an unpaired surrogate escape (``"\\ud800"``)."""
    if isinstance(data, str):
        try:
            raw = data.encode()
        except UnicodeEncodeError:
            raise InvalidRequest(f"the {what} holds an unpaired UTF-16 surrogate; send valid Unicode") from None
    else:
        raw = data
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"the {what} is not UTF-8 JSON (invalid byte at position {exc.start})") from None
    if nesting_exceeds(raw, max_depth):
        raise InvalidRequest(f"the {what} nests arrays and objects more than {max_depth} levels deep")
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"the {what} is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except ValueError as exc:  # NaN/Infinity, or an integer of more digits than Python converts
        raise InvalidRequest(f"the {what} is not valid JSON: {exc}") from None
    except RecursionError:  # unreachable after the depth check; kept so no input can reach a 500
        raise InvalidRequest(f"the {what} nests arrays and objects too deep") from None
    if _SURROGATE_ESCAPE.search(raw) and _has_lone_surrogate(value):
        raise InvalidRequest(
            f"the {what} holds an unpaired UTF-16 surrogate escape (\\ud800-\\udfff): send valid Unicode"
        )
    return value
