"""Where a command's output goes and in what shape: the one ``Console`` the
``jobs``, ``predictions`` and ``vision`` commands print through.

Two shapes, chosen by where stdout goes:

- **a terminal**: rich tables as wide as the terminal, colour (unless
  ``--no-color`` / ``NO_COLOR``). Identifiers, names, numbers, statuses and
  times (``fixed`` columns) are never wrapped or cut; only free text
  (``text`` columns) gives way, cut to one line with an ellipsis. A table whose
  fixed columns alone are wider than the terminal is printed wider (the
  terminal wraps the line; no value is cut).
- **anything else** (a pipe, a file, a test's StringIO): tab-separated
  lines, header first, one row per line, nothing cut or wrapped, no colour
  (``cut -f2``, ``awk -F'\\t'`` and ``grep`` work); key/value pairs are
  ``key<TAB>value`` lines.

``--json`` output is the commands' own (the API's shapes), written as is.
"""
from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from rest_framework.utils.encoders import JSONEncoder
from rich import box
from rich.console import Console as RichConsole
from rich.table import Table
from rich.text import Text

from jobsite.cli.progress import ProgressLine

# A header underlined with dashes, no borders: rows start at column 0.
DASHED_HEAD = box.Box("    \n    \n -  \n    \n    \n    \n    \n    \n", ascii=True)
GAP = 2  # columns between two table columns
TEXT_MIN_WIDTH = 12  # a free-text column is cut no narrower than this (or its header)

STATUS_STYLES = {
    "success": "green", "active": "green", "yes": "green", "completed": "green",
    "failed": "red", "error": "red", "timeout": "red", "missed": "red",
    "running": "cyan", "queued": "blue", "processing": "cyan", "pending": "blue",
    "cancelled": "yellow", "skipped": "yellow", "paused": "yellow",
    "disabled": "dim", "no": "dim",
}


# ---------------------------------------------------------------------------
# Columns
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """A table column. ``text`` columns hold free text, the only cells that
    may be cut (with an ellipsis) to fit a terminal; every other column shows
    its values whole."""

    header: str
    text: bool = False
    justify: str = "left"


def fixed(header: str) -> Column:
    """Ids, names, statuses, times: never cut or wrapped."""
    return Column(header)


def number(header: str) -> Column:
    """Counts and rates: whole, right-aligned."""
    return Column(header, justify="right")


def text(header: str) -> Column:
    """Free text (descriptions, outputs, schedules in words): cut to fit."""
    return Column(header, text=True)


def as_column(spec: Column | str) -> Column:
    return spec if isinstance(spec, Column) else fixed(spec)


def one_line(value: Any) -> str:
    """A cell on one line: tabs and line breaks become single spaces."""
    return " ".join(str("" if value is None else value).split())


def truncate(value: str, width: int = 60) -> str:
    """Free text cut to ``width`` characters, with an ellipsis."""
    value = one_line(value)
    return value if len(value) <= width else value[: width - 1] + "…"


def styled(value: Any) -> Text:
    """A status word in its colour (on a terminal)."""
    value = str(value)
    return Text(value, style=STATUS_STYLES.get(value, ""))


def _plain(cell: Any) -> str:
    return one_line(cell.plain if isinstance(cell, Text) else cell)


def fit_widths(natural: Sequence[int], columns: Sequence[Column], available: int) -> list[int]:
    """Column widths for a table ``available`` characters wide: fixed columns
    keep their natural width; free-text columns share what is left, the
    narrow ones whole first, none under TEXT_MIN_WIDTH (or its natural width)."""
    widths = list(natural)
    free = sorted((i for i, c in enumerate(columns) if c.text), key=lambda i: natural[i])
    if not free:
        return widths
    room = available - GAP * (len(columns) - 1) - sum(w for i, w in enumerate(natural) if not columns[i].text)
    for position, i in enumerate(free):
        share = room // (len(free) - position)
        floor = min(natural[i], max(TEXT_MIN_WIDTH, len(columns[i].header)))
        widths[i] = min(natural[i], max(share, floor))
        room -= widths[i]
    return widths


# ---------------------------------------------------------------------------
# The console
# ---------------------------------------------------------------------------
class _RichConsole(RichConsole):
    def on_broken_pipe(self) -> None:
        # rich would exit(1) silently; the command says what happened (exit 141)
        self.quiet = True
        raise BrokenPipeError


def terminal_width(default: int = 100) -> int:
    return shutil.get_terminal_size((default, 24)).columns


@dataclass
class Console:
    """A command's stdout, with the few shapes commands print."""

    stdout: Any
    stderr: Any = None  # where notes go when stdout is not a terminal (default: sys.stderr)
    no_color: bool = False
    force_color: bool = False
    style: Any = None  # Django's styles, for callers that pass them
    rich: RichConsole = field(init=False)

    def __post_init__(self):
        stream = getattr(self.stdout, "_out", self.stdout)  # Django's OutputWrapper would add newlines to chunks
        self.stream = stream
        terminal = self.force_color or (hasattr(stream, "isatty") and stream.isatty())
        self.rich = _RichConsole(
            file=stream, width=terminal_width() if terminal else 10_000,
            force_terminal=True if self.force_color else None, no_color=self.no_color or None,
            highlight=False, markup=False, emoji=False, soft_wrap=False,
        )

    @property
    def is_terminal(self) -> bool:
        return self.rich.is_terminal

    # -- lines ----------------------------------------------------------------
    def out(self, line: str = "", style: str | None = None) -> None:
        # soft_wrap: a message stays one line, whatever its length (the terminal wraps it)
        self.rich.print(Text(line, style=style or ""), soft_wrap=True)

    def success(self, line: str) -> None:
        self.out(line, "green")

    def error(self, line: str) -> None:
        self.out(line, "bold red")

    def heading(self, line: str) -> None:
        self.out(line, "bold cyan")

    def note(self, line: str) -> None:
        """A line about a table (its page, its count, that it is empty): after
        a blank line on a terminal; on stderr otherwise, so that what is piped
        is the table alone."""
        if self.is_terminal:
            self.out("\n" + line)
            return
        stream = getattr(self.stderr, "_out", self.stderr) if self.stderr is not None else sys.stderr
        stream.write(line + "\n")  # the raw stream: no colour, Django's OutputWrapper would add an error style

    def write(self, raw: str) -> None:
        """Text as is (a shell script, CSV)."""
        self.rich.file.write(raw)

    def flush(self) -> None:
        self.rich.file.flush()

    # -- tables -----------------------------------------------------------------
    def table(self, rows: Iterable[Sequence[Any]], columns: Sequence[Column | str]) -> None:
        columns = [as_column(c) for c in columns]
        rows = [list(row) for row in rows]
        if not self.is_terminal:
            self._tsv([c.header for c in columns], rows)
            return
        cells = [[cell if isinstance(cell, Text) else Text(one_line(cell)) for cell in row] for row in rows]
        natural = [max([len(c.header)] + [cell.cell_len for cell in (row[i] for row in cells)])
                   for i, c in enumerate(columns)]
        widths = fit_widths(natural, columns, self.rich.width)
        table = Table(box=DASHED_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold",
                      expand=False)
        for column, width in zip(columns, widths):
            table.add_column(column.header, width=width, no_wrap=True, justify=column.justify,
                             overflow="ellipsis" if column.text else "fold")
        for row in cells:
            table.add_row(*row)
        self._print_trimmed(table, width=max(self.rich.width, sum(widths) + GAP * (len(widths) - 1)))

    def _tsv(self, header: list[str], rows: list[list[Any]]) -> None:
        lines = ["\t".join(header)] + ["\t".join(_plain(cell) for cell in row) for row in rows]
        self.rich.file.write("\n".join(lines) + "\n")

    def pairs(self, rows: Iterable[Sequence[Any]], *, indent: int = 0) -> None:
        """Key/value lines: ``key<TAB>value`` off a terminal, an aligned grid
        (indented ``indent`` spaces) on one."""
        rows = [(str(key).strip(), value) for key, value in rows]
        if not self.is_terminal:
            self.rich.file.write("".join(f"{key}\t{_plain(value)}\n" for key, value in rows))
            return
        # One line a value, never folded: a name or an id stays whole (the terminal
        # wraps a line longer than itself); a value's own line breaks are indented.
        keys = max((len(key) for key, _ in rows), default=0)
        for key, value in rows:
            first, *more = (value.plain.splitlines() if isinstance(value, Text) else str(value).splitlines()) or [""]
            line = Text(" " * indent) + Text(key.ljust(keys), style="bold") + Text("  ")
            line += value if isinstance(value, Text) and not more else Text(first)
            self.rich.print(line, soft_wrap=True)
            for continuation in more:
                self.rich.print(Text(" " * (indent + keys + 2) + continuation), soft_wrap=True)

    def block(self, title: str, body: str) -> None:
        """A multi-line text (traceback, log) under a heading, as is."""
        self.heading(title)
        for line in (body or "").splitlines() or ["-"]:
            self.rich.print(Text("  " + line), soft_wrap=True)

    def _print_trimmed(self, renderable, width: int | None = None) -> None:
        """Print without the padding rich leaves at the end of table lines;
        ``width`` wider than the console's lets a table of whole values
        overflow the terminal rather than be cut."""
        console_width = self.rich.width
        if width and width > console_width:
            self.rich.width = width
        try:
            with self.rich.capture() as captured:
                self.rich.print(renderable)
        finally:
            self.rich.width = console_width
        self.rich.file.write("\n".join(line.rstrip() for line in captured.get().splitlines()) + "\n")

    # -- machine-readable ----------------------------------------------------------
    def json(self, data: Any) -> None:
        """``--json``: the API's shapes, never coloured."""
        self.rich.file.write(json.dumps(data, cls=JSONEncoder, indent=2, ensure_ascii=False) + "\n")

    # -- interaction --------------------------------------------------------------
    def progress(self, **kwargs) -> ProgressLine:
        """A progress line on this console's stream (see jobsite.cli.progress)."""
        return ProgressLine(self.rich.file, is_terminal=self.is_terminal, **kwargs)

    def confirm(self, question: str) -> bool:
        """Ask; no answer (end of input, no usable stdin) is a No."""
        self.rich.file.write(question)
        self.rich.file.flush()
        try:
            answer = input()
        except (EOFError, OSError):  # stdin closed, or not readable (pytest capture, daemon)
            self.rich.file.write("\n")
            return False
        return answer.strip().lower() in ("y", "yes")
