"""What a config check reports: a problem names the file, line, path and reason."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

PathKey = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """Raised when a config file cannot be loaded; lists every problem found, in file order."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.line or 0, p.path))
        super().__init__("\n".join(str(p) for p in self.problems))


def format_path(path: PathKey) -> str:
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out


def line_for(lines: Mapping[PathKey, int], path: PathKey) -> int | None:
    """The line of ``path``, or of its nearest enclosing path (a missing key is reported at its parent)."""
    for end in range(len(path), -1, -1):
        if (line := lines.get(path[:end])) is not None:
            return line
    return None


class ProblemList:
    """Collects problems of one file, each placed at the line of its path."""

    def __init__(
        self, file: str, lines: Mapping[PathKey, int], locate: Callable[[PathKey], PathKey] | None = None
    ) -> None:
        self.file = file
        self.lines = lines
        # Maps a path of the checked data to the same entry's path in the file (entries may have been set aside).
        self.locate = locate or (lambda path: path)
        self.problems: list[ConfigProblem] = []

    def add(self, path: PathKey, message: str) -> None:
        path = self.locate(path)
        self.problems.append(ConfigProblem(self.file, line_for(self.lines, path), format_path(path), message))
