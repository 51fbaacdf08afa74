"""Runs a workflow's steps in order inside one Execution's Celery task.

Each step's status, start/end, duration, attempts, output (size-capped) and
error are written into the Execution's ``result`` after every change, so
``GET /api/workflows/runs/{id}`` shows the run live. The first failing step
stops the run (unless it says ``continue_on_failure``); its error names it.
A run may start at ``resume_from`` with the outputs of the steps before it
(``previous_outputs``): the re-run of a failed run from its failed step.
"""
from __future__ import annotations

import json
import logging
import signal
import threading
import time
from contextlib import contextmanager
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.utils import timezone

from jobsite.crypto import secrets_decrypt
from scheduling import services as core_services
from scheduling.executors import RunResult
from scheduling.workflows import services, templating
from scheduling.workflows.steps import COMMON_FIELDS, StepContext, step_timeout, step_type_for

logger = logging.getLogger(__name__)

MAX_RETRY_BACKOFF_SECONDS = 60


class StepTimeout(BaseException):
    """A step overran its ``timeout_seconds``. A BaseException, so that a step
    catching ``Exception`` (a task, say) cannot swallow it."""


class StepFailed(Exception):
    def __init__(self, message: str, attempts: int):
        super().__init__(message)
        self.attempts = attempts


@contextmanager
def time_limit(seconds: float):
    """Interrupt the block after ``seconds`` (SIGALRM; Celery's prefork and solo
    pools run tasks in the main thread and do not use SIGALRM themselves).
    Elsewhere (a threads pool) only the job's own time limit applies."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum, frame):
        raise StepTimeout(f"timed out after {seconds:g}s (timeout_seconds)")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _now() -> str:
    return timezone.now().isoformat()


def stored_output(output: Any) -> tuple[Any, bool]:
    """The output as recorded: JSON-safe, and at most WORKFLOWS_STEP_OUTPUT_MAX_BYTES
    (a longer one is kept as the start of its JSON text, flagged truncated)."""
    text = json.dumps(output, default=str)
    limit = settings.WORKFLOWS_STEP_OUTPUT_MAX_BYTES
    if len(text.encode()) <= limit:
        return json.loads(text), False
    return text.encode()[:limit].decode(errors="ignore"), True


def _describe(exc: BaseException) -> str:
    from jobsite.http import OutboundHTTPError

    if isinstance(exc, (OutboundHTTPError, templating.TemplateError, StepTimeout)):
        return str(exc)  # already names the (redacted) URL or the placeholder
    return f"{type(exc).__name__}: {exc}"


def _render_config(step: dict, step_type, variables: dict) -> dict:
    config = {key: value for key, value in step.items() if key not in COMMON_FIELDS}
    url_fields = set(getattr(step_type, "url_fields", ()))
    for field_name in getattr(step_type, "templated_fields", ()):
        if field_name in config:
            config[field_name] = templating.render(config[field_name], variables, quote_url=field_name in url_fields)
    return config


def _run_step(step: dict, step_type, context: StepContext) -> tuple[Any, int]:
    """Run one step with its retries; returns (output, attempts) or raises StepFailed."""
    retries = int(step.get("retries") or 0)
    delay = float(step.get("retry_delay_seconds", 1))
    error = "failed"
    for attempt in range(1, retries + 2):
        try:
            config = _render_config(step, step_type, context.variables)
        except templating.TemplateError as exc:
            raise StepFailed(str(exc), attempt) from None  # the same next time: no retry
        try:
            with time_limit(context.timeout_seconds):
                return step_type.run(config, context), attempt
        except SoftTimeLimitExceeded:
            raise  # the job's own time limit: the core records the run as timeout
        except StepTimeout as exc:
            error = str(exc)
        except Exception as exc:
            error = _describe(exc)
        if attempt <= retries:
            wait = min(delay * 2 ** (attempt - 1), MAX_RETRY_BACKOFF_SECONDS)
            logger.info("step '%s' attempt %d failed (%s); retrying in %.1fs", step["name"], attempt, error, wait)
            time.sleep(wait)
    raise StepFailed(error, retries + 1)


def workflow_run(*, job, execution, workflow, params: dict[str, Any]) -> RunResult:
    """Run ``workflow`` for one execution of ``job`` (the executor's ``run``)."""
    input_text = params.get("input", "")
    resume_from = int(params.get("resume_from") or 0)
    previous_outputs = params.get("previous_outputs") or {}
    steps = list(workflow.steps)
    job_id = (job.config or {}).get("job_id", "")
    outputs: dict[str, dict[str, Any]] = {}
    previous: Any = None
    entries = []
    for index, step in enumerate(steps):
        entry = {
            "index": index, "name": step["name"], "type": step["type"], "status": "pending",
            "started_at": None, "finished_at": None, "duration_seconds": None, "attempts": 0,
            "output": None, "output_truncated": False, "error": "",
        }
        if index < resume_from:
            entry["status"] = "reused"
            entry["output"] = previous_outputs.get(step["name"])
            outputs[step["name"]] = {"output": entry["output"], "status": "reused"}
            previous = entry["output"]
        entries.append(entry)
    result: dict[str, Any] = {
        "workflow_id": workflow.pk, "workflow_name": workflow.name, "job_id": job_id, "input": input_text,
        "resume_from": resume_from, "resumed_from_execution": params.get("resumed_from_execution"),
        "status": "running", "failed_step": None, "steps": entries,
    }
    core_services.execution_record_progress(execution=execution, result=result)
    variables: dict[str, Any] = {
        "input": input_text, "steps": outputs, "secrets": secrets_decrypt(workflow.secrets),
        "job_id": job_id, "execution_id": execution.pk, "workflow_id": workflow.pk,
    }
    continued_failures = []

    for index in range(resume_from, len(steps)):
        step, entry = steps[index], entries[index]
        if not core_services.execution_is_running(execution=execution):
            return RunResult(ok=False, output="Stopped: the run is no longer running (cancelled).", result=result)
        step_type = step_type_for(step["type"])
        entry.update(status="running", started_at=_now())
        core_services.execution_record_progress(execution=execution, result=result)
        started = time.monotonic()
        variables["previous"] = previous
        failure = None
        try:
            if step_type is None:
                raise StepFailed(f"step type '{step['type']}' is not installed on this worker", 1)
            context = StepContext(
                workflow_id=workflow.pk, job_id=job_id, execution_id=execution.pk, owner=workflow.owner,
                input=input_text, timeout_seconds=step_timeout(step, step_type), variables=variables,
            )
            output, attempts = _run_step(step, step_type, context)
        except StepFailed as exc:
            failure, attempts, output = str(exc), exc.attempts, None
        except SoftTimeLimitExceeded:
            entry.update(status="timeout", finished_at=_now(), duration_seconds=round(time.monotonic() - started, 3),
                         error=f"the job's timeout of {job.timeout_seconds}s ran out during this step")
            result.update(status="timeout", failed_step=step["name"])
            core_services.execution_record_progress(execution=execution, result=result)
            raise
        recorded, truncated = stored_output(output)
        entry.update(
            finished_at=_now(), duration_seconds=round(time.monotonic() - started, 3), attempts=attempts,
            output=recorded, output_truncated=truncated,
        )
        if failure is None:
            entry["status"] = "success"
            outputs[step["name"]] = {"output": output, "status": "success"}
            previous = output
        else:
            entry.update(status="failed", error=failure)
            outputs[step["name"]] = {"output": None, "status": "failed"}
            previous = None
            if step.get("continue_on_failure"):
                continued_failures.append(step["name"])
            else:
                for later in entries[index + 1:]:
                    later["status"] = "skipped"
                result.update(status="failed", failed_step=step["name"])
                core_services.execution_record_progress(execution=execution, result=result)
                return RunResult(
                    ok=False, result=result,
                    output=f"Step {index + 1} '{step['name']}' ({step['type']}) failed: {failure}"[:2000],
                )
        core_services.execution_record_progress(execution=execution, result=result)

    result["status"] = "success"
    ran = len(steps) - resume_from
    summary = f"Workflow {workflow.pk}: {ran - len(continued_failures)} of {ran} step(s) succeeded"
    if continued_failures:
        summary += f"; failed but continued: {', '.join(continued_failures)}"
    return RunResult(output=summary, result=result)
