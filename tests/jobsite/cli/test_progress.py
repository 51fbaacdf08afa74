"""jobsite.cli.progress: a progress line never wider than the terminal (a
wider one wraps, and each redraw leaves a line of trail); off a terminal,
plain lines now and then."""
import io

import pytest

from jobsite.cli.progress import CLEAR_TO_END, ProgressLine, fit_line

# the `predictions upload` line that was ~105 characters wide
ESSENTIAL = " 42.5%  425,000/1,000,000 rows"
OPTIONAL = ["1,234 errors", "processing", "12,345 rows/s", "ETA 46s"]


@pytest.mark.parametrize("width", [100, 79, 60, 45, 30, 20, 12])
def test_fit_line_is_never_wider_than_asked(width):
    line = fit_line(ESSENTIAL, OPTIONAL, fraction=0.425, width=width)
    assert len(line) <= width
    if width >= len(ESSENTIAL):
        assert ESSENTIAL.strip() in line  # the essential text is cut last


def test_fit_line_narrows_the_bar_then_drops_optional_parts_from_the_end():
    full = fit_line(ESSENTIAL, OPTIONAL, fraction=0.5, width=200)
    assert full.startswith("[" + "#" * 15 + "." * 15 + "]") and full.endswith("ETA 46s")
    narrower = fit_line(ESSENTIAL, OPTIONAL, fraction=0.5, width=95)
    assert narrower.endswith("ETA 46s") and len(narrower) == 95 and narrower.index("]") == 13  # a 12-wide bar
    fewer = fit_line(ESSENTIAL, OPTIONAL, fraction=0.5, width=60)
    assert "ETA" not in fewer and fewer.startswith("[")
    assert fit_line(ESSENTIAL, OPTIONAL, fraction=0.5, width=31) == ESSENTIAL  # no room for a bar
    assert fit_line(ESSENTIAL, OPTIONAL, fraction=0.5, width=10) == ESSENTIAL[:9] + "…"


def test_on_a_terminal_each_redraw_fits_and_clears_the_rest_of_the_line():
    out = io.StringIO()
    line = ProgressLine(out, is_terminal=True, columns=lambda: 100)
    for done in (0.1, 0.5, 0.9):
        line.update(ESSENTIAL, OPTIONAL, fraction=done)
    line.finish()
    written = out.getvalue()
    assert written.endswith("\n") and written.count("\n") == 1  # one line, redrawn in place
    redraws = written.rstrip("\n").split("\r")[1:]
    assert len(redraws) == 3
    for redraw in redraws:
        assert redraw.endswith(CLEAR_TO_END)
        assert len(redraw[: -len(CLEAR_TO_END)]) <= 99  # one short of the edge


def test_a_resized_terminal_is_followed():
    out = io.StringIO()
    widths = iter([100, 40])
    line = ProgressLine(out, is_terminal=True, columns=lambda: next(widths))
    line.update(ESSENTIAL, OPTIONAL, fraction=0.5)
    line.update(ESSENTIAL, OPTIONAL, fraction=0.6)
    first, second = out.getvalue().split("\r")[1:]
    assert len(first) - len(CLEAR_TO_END) > 60 and len(second) - len(CLEAR_TO_END) <= 39


def test_off_a_terminal_plain_lines_on_a_change_and_every_so_often():
    out = io.StringIO()
    now = [0.0]
    line = ProgressLine(out, is_terminal=False, plain_every=10.0, clock=lambda: now[0])
    for second, status in [(0, "pending"), (1, "processing"), (2, "processing"), (5, "processing"),
                           (11, "processing"), (12, "processing")]:
        now[0] = second
        line.update(f"{second}s", [status], key=status)
    line.finish()  # the last state, not written yet
    assert out.getvalue().splitlines() == ["0s  pending", "1s  processing", "11s  processing", "12s  processing"]
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
