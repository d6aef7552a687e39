"""The final result of a stream, built from its events (no I/O)."""

from __future__ import annotations

from gateway.model import Event, Message, Result, Role, TextPart, TokenUsage, add_usage


class ResultCollector:
    """Builds the final result of a stream from its events: complete messages
    are kept; text deltas between them are joined into one agent message."""

    def __init__(self, agent: str) -> None:
        self.agent = agent
        self.messages: list[Message] = []
        self._deltas: list[str] = []
        self.usage: TokenUsage | None = None

    def add(self, event: Event) -> None:
        if event.usage is not None:
            self.usage = add_usage(self.usage, event.usage)
        if event.type == "delta" and event.message is not None:
            parts = event.message.parts
            # One text part (a token's delta) needs no join.
            self._deltas.append(parts[0].text if len(parts) == 1 and type(parts[0]) is TextPart else event.message.text)
        elif event.type == "message" and event.message is not None:
            self._flush()
            self.messages.append(event.message)

    def _flush(self) -> None:
        if self._deltas:
            self.messages.append(Message(Role.AGENT, (TextPart("".join(self._deltas)),)))
            self._deltas = []

    def result(self) -> Result:
        self._flush()
        return Result(self.agent, tuple(self.messages), usage=self.usage)
