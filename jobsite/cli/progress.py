"""A progress line that fits the terminal, for any long command.

On a terminal the line is redrawn in place (``\\r`` + the line + clear to the
end of the line), never wider than the terminal is now
(``shutil.get_terminal_size``, asked at every redraw, so a resized window is
followed): the bar narrows (30 to 10 characters), optional parts are dropped
from the end, then the bar goes, and the essential text is cut last, with an
ellipsis. A line wider than the terminal would wrap, and each redraw would
leave a line of trail.

Anywhere else (a pipe, a log file, CI) there is no redrawing: a plain line is
written when the state changes (``key``) or every ``plain_every`` seconds,
and once at the end.
"""
from __future__ import annotations

import shutil
import time
from typing import Callable, Sequence

CLEAR_TO_END = "\x1b[K"
BAR_MAX, BAR_MIN = 30, 10


def bar(fraction: float, width: int) -> str:
    filled = max(0, min(width, int(width * fraction)))
    return f"[{'#' * filled}{'.' * (width - filled)}]"


def fit_line(essential: str, optional: Sequence[str] = (), *, fraction: float | None = None, width: int) -> str:
    """The fullest line of at most ``width`` characters: ``[bar] essential
    optional...`` (two spaces apart). The bar narrows (BAR_MAX to BAR_MIN),
    then optional parts are dropped from the end, then the bar goes; the
    essential text is cut (with an ellipsis) only when it alone is too wide."""
    optional = list(optional)
    while True:
        text = "  ".join([essential, *optional])
        if fraction is not None:
            room = width - len(text) - 3  # the brackets and one space
            if room >= BAR_MIN:
                return f"{bar(fraction, min(room, BAR_MAX))} {text}"
        if len(text) <= width and (fraction is None or not optional):
            return text
        if not optional:
            break
        optional.pop()
    return essential if len(essential) <= width else essential[: max(width - 1, 0)] + "…"


class ProgressLine:
    """``update()`` as often as you like; ``finish()`` once at the end."""

    def __init__(self, stream, *, is_terminal: bool, plain_every: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, columns: Callable[[], int] | None = None):
        self.stream = stream
        self.is_terminal = is_terminal
        self.plain_every = plain_every
        self.clock = clock
        self.columns = columns or (lambda: shutil.get_terminal_size((80, 24)).columns)
        self._drawn = False
        self._last_key: object = object()
        self._last_plain_at: float | None = None
        self._last_plain = ""
        self._pending = ""

    def update(self, essential: str, optional: Sequence[str] = (), *, fraction: float | None = None,
               key: object = None) -> None:
        if self.is_terminal:
            # one column short of the edge: some terminals wrap as soon as the last one is written
            line = fit_line(essential, optional, fraction=fraction, width=max(self.columns() - 1, 10))
            self._drawn = True  # first: a Ctrl-C during the write still ends the line
            self.stream.write("\r" + line + CLEAR_TO_END)
            self.stream.flush()
            return
        line = "  ".join([essential, *optional])
        self._pending = line
        now = self.clock()
        if key != self._last_key or self._last_plain_at is None or now - self._last_plain_at >= self.plain_every:
            self._write_plain(line, now)
            self._last_key = key

    def _write_plain(self, line: str, now: float) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()
        self._last_plain_at = now
        self._last_plain = line
        self._pending = ""

    def finish(self) -> None:
        """End the line (terminal), or write the last state if not yet written."""
        if self.is_terminal:
            if self._drawn:
                self.stream.write("\n")
                self.stream.flush()
            self._drawn = False
        elif self._pending and self._pending != self._last_plain:
            self._write_plain(self._pending, self.clock())
