"""demo.sleep: a run you can watch and stop, right after `make run`.

It sleeps for ``seconds``, logging and recording its progress once a second
(the admin, the API and ``jobs execute --wait`` show both), and fails at the
end when asked to (``fail=true``), so cancel, ``--wait``, progress, retries,
tracebacks and failure notifications can all be tried without writing a task.
"""
from __future__ import annotations

import logging
import time

from scheduling.executors import RunResult, schedulable
from scheduling.maintenance.common import bool_option

logger = logging.getLogger(__name__)

MAX_SECONDS = 24 * 3600
PROGRESS_EVERY_SECONDS = 1.0


@schedulable(
    "demo.sleep",
    description="Sleep `seconds` (default 30) logging progress; `fail=true` raises at the end (demo task).",
)
def demo_sleep(*, execution, seconds: float = 30, fail: bool = False, message: str = "asked to fail") -> RunResult:
    from scheduling import services

    seconds = _seconds(seconds)
    fail = bool_option("fail", fail)
    logger.info("demo.sleep: sleeping %gs%s", seconds, " then failing" if fail else "")
    started = time.monotonic()
    next_report = started
    while (elapsed := time.monotonic() - started) < seconds:
        if time.monotonic() >= next_report:
            next_report += PROGRESS_EVERY_SECONDS
            progress = {"elapsed_seconds": round(elapsed, 1), "seconds": seconds,
                        "percent": round(100 * elapsed / seconds, 1) if seconds else 100.0}
            logger.info("demo.sleep: %.0f of %gs", elapsed, seconds)
            if not services.execution_record_progress(execution=execution, result=progress):
                # cancelled (or lost) meanwhile: the revoke may still be on its way
                return RunResult(ok=False, output=f"Stopped after {elapsed:.1f}s: no longer running")
        time.sleep(min(0.1, max(0.0, seconds - elapsed)))
    if fail:
        raise RuntimeError(str(message))
    logger.info("demo.sleep: done")
    return RunResult(output=f"Slept {seconds:g}s", result={"elapsed_seconds": round(time.monotonic() - started, 3),
                                                           "seconds": seconds, "percent": 100.0})


def _seconds(value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"seconds must be a number, got {value!r}.") from None
    if not 0 <= number <= MAX_SECONDS:  # also refuses NaN
        raise ValueError(f"seconds must be from 0 to {MAX_SECONDS}, got {value!r}.")
    return number
