"""What the CLI prints: fitted to the terminal when a person watches, plain lines when piped.

On a terminal, tables take the terminal's width (long details fold inside their column, names
stay whole), long messages wrap at words, and long operations show a spinner with the elapsed
time above the lines they log. Piped or redirected, every stream stays greppable: no colour, no
box drawing, one line per message and one tab-separated line per table row, as wide as needed.
Each stream (stdout, stderr) is judged on its own.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

Report = Callable[[str], None]


def is_tty(err: bool = False) -> bool:
    stream: IO[str] = sys.stderr if err else sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _console(err: bool) -> Any:
    from rich.console import Console
    return Console(stderr=err, highlight=False, soft_wrap=False)


def width(err: bool = False) -> int:
    """The terminal's width (rich reads COLUMNS and the tty), 80 when it cannot be known."""
    return int(_console(err).width) if is_tty(err) else 80


def line(text: str, err: bool = False) -> None:
    """One message: wrapped at the terminal's width (continuations indented), as is when piped."""
    stream = sys.stderr if err else sys.stdout
    if not is_tty(err):
        print(text, file=stream, flush=True)
        return
    print(wrap(text, width(err)), file=stream, flush=True)


def wrap(text: str, columns: int) -> str:
    """Wrap at words to `columns`; continuation lines indented two more than the first."""
    indent = len(text) - len(text.lstrip(" "))
    return "\n".join(textwrap.wrap(text, width=max(20, columns), subsequent_indent=" " * (indent + 2),
                                   break_long_words=True, break_on_hyphens=False) or [""])


@dataclass(frozen=True)
class Col:
    """A table column: `whole` keeps each value on one line (never cut; others make room)."""

    header: str
    whole: bool = True
    style: str | None = None
    ratio: int = 1                   # how much of the room left a folding column gets


def table(title: str, cols: Sequence[Col], rows: Sequence[Sequence[str]],
          styles: Sequence[str | None] | None = None) -> None:
    """A table on stdout: drawn to the terminal's width, or one tab-separated line per row."""
    if not is_tty():
        for r in rows:
            print("\t".join(v.replace("\t", " ").replace("\n", " ") for v in r))
        return
    from rich import box
    from rich.table import Table
    from rich.text import Text
    folding = any(not c.whole for c in cols)
    # expand: the folding columns share the terminal's width by their ratios (rich applies ratios only then)
    t = Table(title=title or None, box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, padding=(0, 1, 0, 0),
              title_justify="left", expand=folding)
    for i, c in enumerate(cols):
        longest = max([len(c.header)] + [len(r[i]) for r in rows])
        if c.whole:
            t.add_column(c.header, no_wrap=True, min_width=longest, style=c.style)
        else:
            t.add_column(c.header, overflow="fold", ratio=c.ratio, min_width=min(12, longest), style=c.style)
    for k, r in enumerate(rows):
        t.add_row(*(Text(v) for v in r), style=(styles[k] if styles else None))
    _console(False).print(t)


@contextmanager
def progress(title: str, *, threads: bool = True) -> Iterator[Report]:
    """A progress callback for a long operation. On a terminal: a spinner line with the title, the
    latest step and the elapsed time, the steps logged above it (wrapped to the width); else each
    step as an indented plain line on stderr. Without `threads` the line is drawn at the start and
    at each step only (no refresh thread: render forks children, which a threaded process must not)."""
    if not is_tty(err=True):
        yield lambda msg: print(f"  {msg}", file=sys.stderr, flush=True)
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Column
    from rich.text import Text
    console = _console(True)
    bar = Progress(SpinnerColumn(), TextColumn("{task.description}", table_column=Column(no_wrap=True, ratio=1,
                                                                                        overflow="ellipsis")),
                   TimeElapsedColumn(), console=console, transient=True, expand=True, auto_refresh=threads)
    with bar:
        task = bar.add_task(title)
        bar.refresh()

        def report(msg: str) -> None:
            bar.console.print(Text(wrap(f"  {msg}", console.width)))
            bar.update(task, description=f"{title}: {msg}", refresh=not threads)

        yield report
