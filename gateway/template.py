"""Step inputs built from the workflow input and earlier outputs, safely.

A template is any JSON value; inside strings, ``{{ expression }}`` is a
JMESPath expression evaluated against the workflow document::

    {"input": {"text": ..., "data": ...},
     "steps": {"<step>": {"text": ..., "data": ..., "status": ...}},
     "context": {"session_id": ..., "thread_id": ..., "user_id": ..., "request_id": ...}}

A string that is exactly one ``{{ ... }}`` keeps the value's type (an object
stays an object); otherwise values are interpolated as text (JSON for
non-strings). JMESPath selects data and cannot run code: there is no eval.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from gateway.model import DataPart, Message, Result, Role, TextPart

_PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}")


@dataclass(frozen=True, slots=True)
class _Text:
    """A string with placeholders: literal chunks and compiled expressions, alternating."""

    literals: tuple[str, ...]
    expressions: tuple[ParsedResult, ...]
    whole: bool  # exactly one placeholder and nothing else: keep the value's type


def _compile_string(text: str) -> str | _Text:
    expressions = []
    literals = []
    position = 0
    for match in _PLACEHOLDER.finditer(text):
        literals.append(text[position : match.start()])
        try:
            expressions.append(jmespath.compile(match.group(1)))
        except JMESPathError as exc:
            raise ValueError(f"invalid expression {{{{ {match.group(1)} }}}}: {str(exc).splitlines()[0]}") from None
        position = match.end()
    if not expressions:
        return text
    literals.append(text[position:])
    whole = len(expressions) == 1 and not literals[0] and not literals[1]
    return _Text(tuple(literals), tuple(expressions), whole)


class Template:
    """A compiled template; :meth:`render` fills it from a workflow document."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self._compiled = self._compile(source)

    @classmethod
    def _compile(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _compile_string(value)
        if isinstance(value, Mapping):
            return {str(k): cls._compile(v) for k, v in value.items()}
        if isinstance(value, list):
            return [cls._compile(v) for v in value]
        return value

    def render(self, document: Mapping[str, Any]) -> Any:
        return self._render(self._compiled, document)

    def _render(self, value: Any, document: Mapping[str, Any]) -> Any:
        if isinstance(value, _Text):
            results = [expression.search(document) for expression in value.expressions]
            if value.whole:
                return results[0]
            out = [value.literals[0]]
            for result, literal in zip(results, value.literals[1:], strict=True):
                out.append(_as_text(result))
                out.append(literal)
            return "".join(out)
        if isinstance(value, dict):
            return {k: self._render(v, document) for k, v in value.items()}
        if isinstance(value, list):
            return [self._render(v, document) for v in value]
        return value


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value)


def check_template(value: Any) -> Any:
    """Validate ``value`` as a template (for config loading); returns it unchanged."""
    Template(value)
    return value


class Condition:
    """A compiled step condition: a JMESPath expression, true when its value is truthy
    (JMESPath's own truth: not null, false, empty string, list or object)."""

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self._expression = jmespath.compile(source)
        except JMESPathError as exc:
            raise ValueError(f"invalid condition {source!r}: {str(exc).splitlines()[0]}") from None

    def holds(self, document: Mapping[str, Any]) -> bool:
        value = self._expression.search(document)
        return value not in (None, False, "", [], {})


def check_condition(value: str) -> str:
    """Validate ``value`` as a condition (for config loading); returns it unchanged."""
    Condition(value)
    return value


def output_record(result: Result) -> dict[str, Any]:
    """A step's output in the workflow document: its text and its first JSON part."""
    data: Any = None
    for message in result.messages:
        for part in message.parts:
            if isinstance(part, DataPart):
                data = part.data
                break
        if data is not None:
            break
    return {"text": result.text, "data": data, "agent": result.agent}


def message_for(value: Any, role: Role = Role.USER) -> Message:
    """The message a rendered template becomes: text, or a JSON part."""
    if isinstance(value, str):
        return Message(role, (TextPart(value),))
    return Message(role, (DataPart(value),))
