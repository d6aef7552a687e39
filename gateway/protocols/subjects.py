"""Bus subjects (NATS-style): the grammar the bus enforces and the config
validates against, and wildcard matching (the bus routes by it, event grants allow by it)."""

from __future__ import annotations

import re

_SUBJECT_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


def check_subject(value: str, *, pattern: bool) -> str:
    """A NATS-style subject: dot-separated tokens; patterns may use ``*`` (one token)
    and ``>`` (the rest, last token only)."""
    tokens = value.split(".")
    for index, token in enumerate(tokens):
        if pattern and (token == "*" or (token == ">" and index == len(tokens) - 1)):
            continue
        if not _SUBJECT_TOKEN.match(token):
            what = "subject pattern" if pattern else "subject"
            allowed = "; '*' matches one token and '>' the rest" if pattern else " (no wildcards when publishing)"
            raise ValueError(
                f"invalid {what} {value!r}: use dot-separated tokens of letters, digits, '_' and '-'{allowed}"
            )
    return value


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcard semantics: ``*`` matches one token, a final ``>`` one or more."""
    want = pattern.split(".")
    have = subject.split(".")
    for index, token in enumerate(want):
        if token == ">":
            return len(have) > index
        if index >= len(have) or (token != "*" and token != have[index]):
            return False
    return len(have) == len(want)
