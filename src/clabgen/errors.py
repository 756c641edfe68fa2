"""One error type for everything a user can get wrong, pointing at file, line and field."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Where:
    """A place in an input file; line and col are 1-based (0 = unknown)."""

    file: str
    line: int = 0
    col: int = 0
    field: str = ""

    def at(self, field: str) -> Where:
        return Where(self.file, self.line, self.col, field)

    def __str__(self) -> str:
        pos = self.file
        if self.line:
            pos += f":{self.line}"
            if self.col:
                pos += f":{self.col}"
        return f"{pos}: {self.field}" if self.field else pos


@dataclass(frozen=True)
class Problem:
    where: Where | None
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        return f"{text} ({self.hint})" if self.hint else text


class ClabgenError(Exception):
    """Raised once per stage with every problem found, so the user fixes them in one go."""

    exit_code = 2

    def __init__(self, *problems: Problem | str) -> None:
        self.problems = tuple(p if isinstance(p, Problem) else Problem(None, p) for p in problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class RuntimeFailure(ClabgenError):
    """The lab could not be deployed/destroyed on this host (not the user's input)."""

    exit_code = 1


class Problems:
    """Collects problems across a whole stage, then raises once."""

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, where: Where | None, message: str, hint: str = "") -> None:
        self.items.append(Problem(where, message, hint))

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise ClabgenError(*self.items)
