"""jobsite.cli.output: a terminal gets a table as wide as it is, whose ids,
names and numbers are whole (only free text is cut, with an ellipsis);
anything else gets tab-separated lines, header first, nothing cut."""
import io

import pytest

from jobsite.cli.output import Console, fit_widths, fixed, number, text
from tests.jobsite.cli.terminal import visible

LONG_NAME = "predictions.bulk-upload_analytics_aggregation_nightly"
COLUMNS = [fixed("ID"), fixed("Name"), text("Description"), number("Runs")]
ROWS = [[1, LONG_NAME, "A long free-text description " * 4, "100.0%"], [22, "short", "brief", "7"]]


class TerminalStream(io.StringIO):
    def isatty(self):
        return True


def test_piped_table_is_tab_separated_whole_and_plain():
    out = io.StringIO()
    Console(out).table(ROWS + [[3, "tabs\tand\nnewlines", "x", 1]], COLUMNS)
    lines = out.getvalue().splitlines()
    assert lines[0] == "ID\tName\tDescription\tRuns"
    assert lines[1].split("\t") == ["1", LONG_NAME, ("A long free-text description " * 4).strip(), "100.0%"]
    assert lines[3] == "3\ttabs and newlines\tx\t1"  # a cell never breaks the row
    assert "\x1b[" not in out.getvalue() and "…" not in out.getvalue()


def test_piped_pairs_are_key_tab_value_lines():
    out = io.StringIO()
    Console(out).pairs([["Name", LONG_NAME], ["  Output", "two\nlines"]])
    assert out.getvalue() == f"Name\t{LONG_NAME}\nOutput\ttwo lines\n"


@pytest.mark.parametrize("columns", [80, 120, 200])
def test_terminal_table_fits_by_cutting_only_free_text(monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    out = TerminalStream()
    Console(out, no_color=True).table(ROWS, COLUMNS)
    lines = visible(out.getvalue()).splitlines()
    assert all(len(line) <= columns for line in lines), lines
    assert LONG_NAME in lines[2] and "100.0%" in lines[2]  # the name and the number whole
    assert ("…" in lines[2]) == (columns < 182)  # the description gives way (182: every value whole)
    assert lines[2].index(LONG_NAME) == lines[0].index("Name")  # aligned


def test_terminal_table_wider_than_the_terminal_keeps_every_fixed_value_whole(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    out = TerminalStream()
    Console(out, no_color=True).table(ROWS, COLUMNS)
    lines = visible(out.getvalue()).splitlines()
    assert LONG_NAME in lines[2] and "100.0%" in lines[2]
    assert len(lines) == 4  # one line a row: the terminal wraps it, nothing is folded into a second row


def test_fit_widths_shares_the_room_left_between_free_text_columns():
    columns = [fixed("ID"), text("A"), text("B")]
    # natural widths 4, 10, 50 in 50 columns: the narrow free column whole, the wide one gets the rest
    assert fit_widths([4, 10, 50], columns, 50) == [4, 10, 50 - 4 - 10 - 4]
    assert fit_widths([4, 10, 50], columns, 200) == [4, 10, 50]
    assert fit_widths([4, 30, 30], columns, 20) == [4, 12, 12]  # never narrower than TEXT_MIN_WIDTH


def test_terminal_pairs_never_fold_a_value(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    out = TerminalStream()
    Console(out, no_color=True).pairs([["File", LONG_NAME], ["Output", "one\ntwo"]])
    assert visible(out.getvalue()).splitlines() == [f"File    {LONG_NAME}", "Output  one", "        two"]
