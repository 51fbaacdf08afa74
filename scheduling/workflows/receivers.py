"""Closes the step a workflow run was in when it ended from outside the runner.

The runner records each step as it goes (``runner.workflow_run``), but a run
can end while a step is still going: a cancel terminates the worker process
that runs it, a worker that dies leaves the run lost, the hard time limit
kills it. The record would then keep that step ``running`` for ever. When the
core announces the run's outcome (``scheduling.signals.execution_finished``,
sent after the outcome is committed, in whichever process recorded it), the
open step is closed here with the run's outcome: ``cancelled``, ``timeout``,
or ``failed`` (the re-run starts from it).
"""
from __future__ import annotations

import logging
from datetime import datetime

from django.dispatch import receiver

from scheduling.models import Execution
from scheduling.signals import execution_finished
from scheduling.workflows.selectors import WORKFLOW_KIND

logger = logging.getLogger(__name__)

OPEN_STEP = "running"
STEP_STATUS_FOR_RUN = {Execution.Status.CANCELLED: "cancelled", Execution.Status.TIMEOUT: "timeout"}


@receiver(execution_finished, sender=Execution, dispatch_uid="workflows.close_open_step")
def close_open_step(sender, *, execution_id: int, status: str, **kwargs) -> None:
    if status == Execution.Status.SUCCESS:  # the runner closed every step itself
        return
    row = (Execution.objects.filter(pk=execution_id, status=status, job__kind=WORKFLOW_KIND)
           .values("result", "completed_at", "error").first())
    if row is None or not isinstance(row["result"], dict):
        return
    result = workflow_result_closed(row["result"], status=status, at=row["completed_at"], reason=row["error"])
    if result is None:
        return
    # Only while the run is as read: a finished run's result is written by nobody else.
    Execution.objects.filter(pk=execution_id, status=status).update(result=result)
    logger.info("workflow run %s ended %s during a step; the step is recorded as %s",
                execution_id, status, STEP_STATUS_FOR_RUN.get(status, "failed"))


def workflow_result_closed(result: dict, *, status: str, at: datetime | None, reason: str) -> dict | None:
    """``result`` with its open step closed for a run that ended ``status``
    (None when no step was open)."""
    steps = result.get("steps")
    if not isinstance(steps, list):
        return None
    open_steps = [step for step in steps if isinstance(step, dict) and step.get("status") == OPEN_STEP]
    if not open_steps:
        return None
    step_status = STEP_STATUS_FOR_RUN.get(status, "failed")
    for step in open_steps:
        step.update(status=step_status, error=step.get("error") or reason or f"The run ended ({status}) during this step.")
        if at is not None:
            step["finished_at"] = at.isoformat()
            started = _parse(step.get("started_at"))
            if started is not None:
                step["duration_seconds"] = round(max((at - started).total_seconds(), 0.0), 3)
    result = {**result, "steps": steps, "status": status}
    if step_status != "cancelled" and not result.get("failed_step"):
        result["failed_step"] = open_steps[0].get("name")
    return result


def _parse(moment) -> datetime | None:
    try:
        return datetime.fromisoformat(moment) if isinstance(moment, str) else None
    except ValueError:
        return None
