"""gateway.json_input: the depth found without parsing is the depth the parser would reach."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import json_input
from gateway.model import InvalidRequest

values = st.recursive(
    st.none() | st.integers() | st.text(alphabet="[]{}\"\\ab", max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(alphabet="[{\"\\x", max_size=3), children,
                                                                        max_size=3),
    max_leaves=30,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=400, deadline=None, database=None, derandomize=True)
@given(value=values, limit=st.integers(1, 8), indent=st.sampled_from([None, 1]))
def test_depth_without_parsing_matches_the_parsed_depth(value: Any, limit: int, indent: int | None) -> None:
    text = json.dumps(value, indent=indent).encode()
    assert json_input.nesting_exceeds(text, limit) == (depth(value) > limit)


@pytest.mark.parametrize(("text", "limit", "exceeds"), [
    (b"[" * 2_000_000, 32, True),  # unbalanced: the parser would descend 2 million levels
    (b"]]]" + b"[" * 4, 5, False),
    (b"]]]" + b"[" * 6, 5, True),
    (b'["[[[[[[", "\\"[[[[[[["]', 3, False),  # brackets in strings, escaped quotes
    (b"{" * 4 + b"]" * 4, 3, True),  # mismatched kinds still nest
])
def test_depth_edge_cases(text: bytes, limit: int, exceeds: bool) -> None:
    assert json_input.nesting_exceeds(text, limit) == exceeds


@pytest.mark.parametrize(("text", "words"), [
    (b"[" * 100, "more than 32 levels"),
    (b'{"a": "\\ud800"}', "unpaired UTF-16 surrogate"),
    (b'{"a": "\\udc00\\ud800"}', "unpaired UTF-16 surrogate"),  # a low before a high is no pair
    (b'{"a": NaN}', "NaN is not a JSON number"),
    (b'"\xff"', "not UTF-8"),
    (b"1" * 5000, "not valid JSON"),
    (b"{", "not valid JSON"),
])
def test_refusals_are_invalid_requests(text: bytes, words: str) -> None:
    with pytest.raises(InvalidRequest, match=words):
        json_input.loads(text)


def test_pairs_and_escaped_backslashes_are_fine() -> None:
    assert json_input.loads(b'["\\ud83d\\ude00", "\\\\ud800"]') == ["\U0001f600", "\\ud800"]
    assert json_input.loads("[1]") == [1]
