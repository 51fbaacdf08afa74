"""How an analysis ends early: its time ran out (``AnalysisTimeout``) or its
run was stopped (``BatchStopped``: cancelled, or the batch's own run is gone)."""
from __future__ import annotations

import time
from typing import Callable


class AnalysisTimeout(Exception):
    pass


class BatchStopped(Exception):
    pass


def check_deadline(deadline: float | None, timeout_seconds: int | float) -> None:
    """Raise ``AnalysisTimeout`` once ``time.monotonic()`` is past ``deadline`` (None: no deadline)."""
    if deadline is not None and time.monotonic() > deadline:
        raise AnalysisTimeout(f"Analysis exceeded its timeout of {timeout_seconds:g} seconds")


def check_running(deadline: float | None, timeout_seconds: int | float,
                  should_stop: Callable[[], bool] | None) -> None:
    """Raise when the analysis is out of time or asked to stop."""
    check_deadline(deadline, timeout_seconds)
    if should_stop is not None and should_stop():
        raise BatchStopped("The batch was cancelled")
