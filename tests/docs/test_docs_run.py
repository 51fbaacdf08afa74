"""Every command of the README and the documentation runs as written.

Each page's shell blocks run in order in one bash against a live stack (what
`make run` starts, on free ports: tests/docs/stack.py), and what a block shows
after ``# →`` must be in what it prints (tests/docs/blocks.py has the
conventions). Blocks marked ``<!-- not-run: why -->`` are listed with their
reasons.

Each page is a work unit of its own for pytest-xdist (tests/plugin.py,
ONE_UNIT_EACH), so the pages spread over the processes; the pages one process
runs one after another share its stack (tests/docs/conftest.py), in whatever
order they come: a page needs nothing another page did.
"""
from __future__ import annotations

import re
import time

import pytest

from tests.docs.blocks import shell_blocks
from tests.docs.pages import ROOT, own_pages
from tests.docs.stack import problems, run_page

# per test: a page (run_page: 480 s), plus the start of a stack (180 s) and the stop of one (30 s)
pytestmark = pytest.mark.timeout(720)

PAGES = own_pages()
RUNNABLE = [page for page in PAGES if any(block.not_run is None for block in shell_blocks(page, ROOT))]
# What only runs outside a test: such a block must say why (<!-- not-run: ... -->).
OUTSIDE_A_TEST = ("docker ", "make run", "make test", "make docs", "mkdocs serve", "systemctl ", "gunicorn ",
                  "pg_dump", "pg_restore", "git pull", "--flower")
STARTED = time.monotonic()


def _commands(code: str) -> str:
    """A block without its comments (what it shows as output may name anything)."""
    return "\n".join(line.split(" # ")[0] for line in code.splitlines() if not line.lstrip().startswith("#"))


def test_every_shell_block_runs_or_says_why_not():
    not_run, unmarked = [], []
    for page in PAGES:
        for block in shell_blocks(page, ROOT):
            if block.not_run is not None:
                not_run.append(f"{block.where}: {block.not_run}")
            elif any(word in _commands(block.code) for word in OUTSIDE_A_TEST):
                unmarked.append(block.where)
    print("\nBlocks not run by the doc tests:\n  " + "\n  ".join(not_run))
    assert unmarked == [], f"blocks that only run outside a test need <!-- not-run: why -->: {unmarked}"
    assert all(len(line.split(": ", 1)[1]) >= 10 for line in not_run), not_run


def _estimated_seconds(page) -> float:
    """Roughly what a page takes (the longest are handed out first): a ``./manage``
    is a Django start, a request is quick, a ``sleep`` is what it says."""
    code = "\n".join(_commands(block.code) for block in shell_blocks(page, ROOT) if block.not_run is None)
    sleeps = sum(float(seconds) for seconds in re.findall(r"\bsleep\s+([\d.]+)", code))
    return 5 + 2 * len(re.findall(r"\./manage\b", code)) + 0.3 * len(re.findall(r"\bcurl\b", code)) + sleeps


PAGE_PARAMS = [pytest.param(page, id=str(page.relative_to(ROOT)),
                            marks=pytest.mark.estimated_seconds(_estimated_seconds(page)))
               for page in RUNNABLE]


# (each a work unit of its own under `make test`: tests/plugin.py, ONE_UNIT_EACH)
@pytest.mark.parametrize("page", PAGE_PARAMS)
def test_page_runs_as_written(stack, page):
    # given: the page's blocks, as a reader would paste them one after the other
    blocks = [block for block in shell_blocks(page, ROOT) if block.not_run is None]
    # when
    run = run_page(stack, blocks)
    # then: every block exits 0 and prints what the page shows
    slowest = sorted(run.blocks, key=lambda block_run: -block_run.seconds)[:3]
    print(f"\n{page.relative_to(ROOT)}: {len(blocks)} blocks in {run.seconds:.1f} s "
          f"(module so far {time.monotonic() - STARTED:.0f} s; slowest: "
          + ", ".join(f"line {block_run.block.line} {block_run.seconds:.1f} s" for block_run in slowest) + ")")
    failed = run.failed_block()
    assert run.returncode == 0, (
        f"{failed.where if failed else page} exited {run.returncode}:\n"
        f"--- stdout (tail)\n{run.stdout[-3000:]}\n--- stderr (tail)\n{run.stderr[-3000:]}"
        + "".join(f"\n--- {log.name} (tail)\n{log.read_text(errors='replace')[-1500:]}"
                  for log in stack.clone.glob("*.log"))
    )
    found = {block_run.block.where: problems(block_run) for block_run in run.blocks}
    found = {where: issues for where, issues in found.items() if issues}
    assert found == {}, "\n".join(
        f"{block_run.block.where}: {problems(block_run)}\n{block_run.output[-2500:]}"
        for block_run in run.blocks if problems(block_run)
    )
