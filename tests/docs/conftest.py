"""The doc tests' live stack: one per pytest process, for the pages that run one
after another in it (tests/docs/stack.py's ProcessStack). Each page is a work
unit of its own for pytest-xdist (tests/plugin.py), so the pages spread over the
processes instead of running in one."""
from __future__ import annotations

import pytest

from tests.docs.stack import ProcessStack, Stack

# Whether the test this process runs next needs the stack too (set just before
# a test's fixtures are torn down: pytest knows its next test then).
_NEXT_TEST = {"needs_stack": False}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    _NEXT_TEST["needs_stack"] = nextitem is not None and "stack" in getattr(nextitem, "fixturenames", ())
    return (yield)


@pytest.fixture(scope="session")
def process_stack(tmp_path_factory):
    holder = ProcessStack(tmp_path_factory)
    yield holder
    holder.stop()


@pytest.fixture
def stack(process_stack) -> Stack:
    """This process's live stack; stopped after the test unless the next test
    of this process runs a page too (then the stack serves it as it is)."""
    yield process_stack.get()
    if not _NEXT_TEST["needs_stack"]:
        process_stack.stop()
