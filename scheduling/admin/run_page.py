"""What a run's admin page shows beyond its fields: its progress (every kind),
a workflow run's steps as a timeline, and the live tail of its log.

Progress is where each kind keeps it: a task's ``result["percent"]``
(``services.execution_record_progress``), a workflow run's step records in
its result, and for the facades' one-off runs the facade's own row linked to
the run (a bulk upload's row counters, a vision batch's image counters). The
admin is a face: it may read the facades (docs/architecture.md, "The map");
it reads them through the reverse relations of the run, so nothing is
imported from them and a missing app reads as "no such row".
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html, format_html_join

from jobsite import humanize
from jobsite.admin.widgets import Palette, pre_block, progress_bar
from scheduling.beat import schedule_description
from scheduling.dashboard.runs import celery_progress, eta_seconds, progress_detail
from scheduling.dashboard.runs import run_progress as recorded_progress
from scheduling.models import Execution

STEP_COLOURS = {"success": Palette.OK, "reused": Palette.IDLE, "running": Palette.BUSY, "pending": Palette.WAITING,
                "failed": Palette.BAD, "timeout": Palette.LATE, "skipped": Palette.OFF}
STEP_DONE = ("success", "reused", "failed", "timeout")
STEP_FAILED = ("failed", "timeout")
#: What a step's output cell shows before "more" (the whole output is one click away).
OUTPUT_PREVIEW_CHARS = 160


@dataclass
class RunProgress:
    percent: float
    failed_percent: float = 0.0
    eta_seconds: float | None = None
    detail: str = ""

    def bar(self):
        return progress_bar(self.percent, failed_percent=self.failed_percent, eta_seconds=self.eta_seconds)


def _share(part: int, whole: int) -> float:
    return min(100.0, 100.0 * part / whole) if whole else 0.0


def run_progress(execution: Execution) -> RunProgress | None:
    """How far ``execution`` got, or None when it recorded no progress.

    A bulk upload's row counters first (its own row, kept as it goes); then
    what the run recorded the core's way (``execution_record_progress``: a
    workflow's steps, a ``percent``, ``processed_X`` of ``total_X``) or, for
    a kind that keeps its Celery result, that task's progress meta; last a
    vision run's batch counters."""
    upload = getattr(execution, "bulk_upload", None)  # a bulk predictions upload's run
    if upload is not None:
        total = upload.total_rows
        percent = 100.0 if execution.status == Execution.Status.SUCCESS else _share(upload.processed_rows, total)
        return RunProgress(percent, _share(upload.failed_rows, total), upload.estimated_completion_seconds,
                           f"{upload.processed_rows:,} of {total:,} rows · {upload.failed_rows:,} failed")
    steps = workflow_steps(execution)
    if steps:
        # where the run got to: the steps that ran or were reused (skipped ones never ran)
        done = sum(1 for step in steps if step.get("status") in STEP_DONE)
        failed = sum(1 for step in steps if step.get("status") in STEP_FAILED)
        skipped = sum(1 for step in steps if step.get("status") == "skipped")
        percent = _share(done, len(steps))
        return RunProgress(percent, _share(failed, len(steps)), eta_seconds(execution, percent),
                           f"{done} of {len(steps)} steps · {failed} failed" + (f" · {skipped} skipped" if skipped else ""))
    recorded = execution.result
    progress = recorded_progress(recorded)
    if progress is None and execution.status == Execution.Status.RUNNING:
        recorded = celery_meta(execution)
        progress = recorded_progress(recorded)
    if progress is not None:
        percent, failed = progress
        if execution.status == Execution.Status.SUCCESS and not failed:
            percent = 100.0
        return RunProgress(percent, failed, eta_seconds(execution, percent), progress_detail(recorded))
    batches = getattr(execution, "vision_batches", None)  # a vision batch's run, or a vision poll's batches
    if batches is not None:
        counts = [(b.total_images, b.processed_images, b.failed_images) for b in batches.all()]
        if counts:
            total, processed, failed = (sum(column) for column in zip(*counts))
            percent = _share(processed, total)
            return RunProgress(percent, _share(failed, total), eta_seconds(execution, percent),
                               f"{processed:,} of {total:,} images · {failed:,} failed"
                               + (f" · {len(counts)} batches" if len(counts) > 1 else ""))
    return None


def celery_meta(execution: Execution) -> dict | None:
    """The Celery task's progress meta of a running run whose kind keeps it (one GET)."""
    return celery_progress([execution]).get(execution.pk)


def run_subjects(execution: Execution):
    """Links to what the run worked on: a bulk upload, the vision batches it analysed."""
    from jobsite.admin.widgets import admin_change_url

    subjects = []
    upload = getattr(execution, "bulk_upload", None)
    if upload is not None:
        subjects.append((admin_change_url(upload), f"Predictions upload {upload.original_filename}"))
    batches = getattr(execution, "vision_batches", None)
    if batches is not None:
        for batch in batches.all()[:20]:
            subjects.append((admin_change_url(batch), f"Vision batch {batch.pk} ({batch.total_images} images)"))
    return format_html_join(" · ", '<a href="{}" class="ops-subject">{}</a>',
                            ((url, label) for url, label in subjects if url)) if subjects else ""


# -- workflow runs ----------------------------------------------------------------
def workflow_steps(execution: Execution) -> list[dict]:
    """A workflow run's step records (the runner's result), [] for any other run."""
    result = execution.result if isinstance(execution.result, dict) else {}
    steps = result.get("steps")
    if "workflow_id" not in result or not isinstance(steps, list):
        return []
    return [step for step in steps if isinstance(step, dict)]


def failed_step(execution: Execution) -> dict | None:
    return next((s for s in workflow_steps(execution) if s.get("status") in STEP_FAILED), None)


def _when(value) -> datetime | None:
    parsed = parse_datetime(value) if isinstance(value, str) else None
    return parsed if parsed is None or timezone.is_aware(parsed) else timezone.make_aware(parsed)


_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ")


def _log_by_step(log: str, steps: list[dict]) -> dict[int, list[str]]:
    """The run's log lines per step, by time: a line stamped within a step's
    start and finish is that step's, and an unstamped line (printed output)
    goes with the line before it. The log is stamped in the server's time zone."""
    windows = []
    for position, step in enumerate(steps):
        started, finished = _when(step.get("started_at")), _when(step.get("finished_at"))
        if started is not None:
            windows.append((position, started - timedelta(seconds=1), (finished or timezone.now()) + timedelta(seconds=1)))
    lines: dict[int, list[str]] = {}
    owner = None
    for line in (log or "").splitlines():
        stamp = _LOG_TIME.match(line)
        if stamp:
            at = timezone.make_aware(datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S"))
            owner = next((position for position, start, end in windows if start <= at <= end), None)
        if owner is not None:
            lines.setdefault(owner, []).append(line)
    return lines


def _step_output(step: dict):
    """A step's output: its text on one line, the whole of it (as JSON when structured) one click away."""
    output = step.get("output")
    if output in (None, "", [], {}):
        return ""
    text = output if isinstance(output, str) else _json(output)
    # a task step answers {"output": summary, "result": ...}: its summary says it best
    line = output["output"] if isinstance(output, dict) and isinstance(output.get("output"), str) else text
    line = " ".join(line.split())
    if line == text and len(text) <= OUTPUT_PREVIEW_CHARS:
        return format_html('<code class="ops-step-output">{}</code>', text)
    return format_html('<details class="ops-step-more"><summary><code>{}</code></summary>{}</details>',
                       line[:OUTPUT_PREVIEW_CHARS] + ("…" if len(line) > OUTPUT_PREVIEW_CHARS else ""),
                       pre_block(text))


def _json(value) -> str:
    import json

    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def steps_timeline(execution: Execution):
    """A workflow run's steps: one row each with its status, duration, output,
    error and the log lines written while it ran."""
    steps = workflow_steps(execution)
    if not steps:
        return "-"
    logs = _log_by_step(execution.log, steps)
    rows = []
    for position, step in enumerate(steps):
        status = str(step.get("status") or "pending")
        duration = step.get("duration_seconds")
        if duration is None and status == "running" and _when(step.get("started_at")):
            duration = (timezone.now() - _when(step["started_at"])).total_seconds()
        attempts = step.get("attempts") or 0
        error = step.get("error") or ""
        step_log = logs.get(position)
        rows.append((
            status, position + 1,
            format_html('<span class="ops-step-name">{}</span><span class="ops-sub"> {}</span>',
                        step.get("name", "?"), step.get("type", "")),
            format_html('<span class="ops-badge ops-step-badge" style="background:{}">{}</span>',
                        STEP_COLOURS.get(status, Palette.OTHER), status),
            humanize.duration(duration) + (f" · {attempts} tries" if attempts > 1 else ""),
            _step_output(step),
            format_html('<div class="ops-step-error">{}</div>', error) if error else "",
            format_html('<details class="ops-step-log"><summary>log · {} line{}</summary>{}</details>',
                        len(step_log), "" if len(step_log) == 1 else "s", pre_block("\n".join(step_log)))
            if step_log else "",
        ))
    body = format_html_join(
        "", '<li class="ops-step ops-step-{}"><span class="ops-step-dot">{}</span><div class="ops-step-head">{}{}'
            '<span class="ops-step-duration">{}</span></div><div class="ops-step-body">{}{}{}</div></li>', rows)
    return format_html('<ol class="ops-steps" id="ops-steps">{}</ol>', body)


def workflow_links(execution: Execution):
    """Links to the run's workflow and its schedule (the job that runs it)."""
    result = execution.result if isinstance(execution.result, dict) else {}
    workflow_id = result.get("workflow_id") or (execution.job.config or {}).get("workflow_id")
    parts = []
    if workflow_id:
        try:
            url = reverse("admin:workflows_workflow_change", args=[workflow_id])
        except NoReverseMatch:
            url = None
        name = result.get("workflow_name") or workflow_id
        parts.append(format_html('Workflow <a href="{}" id="ops-workflow-link">{}</a>', url, name) if url
                     else format_html("Workflow {}", name))
    schedule = (execution.job.config or {}).get("job_id") or execution.job.name
    parts.append(format_html('Schedule <a href="{}" id="ops-schedule-link">{}</a> <span class="ops-sub">{}</span>',
                             reverse("admin:scheduling_job_change", args=[execution.job_id]), schedule,
                             schedule_description(execution.job) or execution.job.get_schedule_type_display()))
    if result.get("resumed_from_execution"):
        parts.append(format_html('Resumes <a href="{}">run {}</a> from step {}',
                                 reverse("admin:scheduling_execution_change", args=[result["resumed_from_execution"]]),
                                 result["resumed_from_execution"], (result.get("resume_from") or 0) + 1))
    return format_html_join(" · ", "{}", ((part,) for part in parts))


# -- the live log tail ---------------------------------------------------------------
# runlog keeps a long log's head and tail with this marker between them (scheduling/runlog.py)
_CUT = re.compile(r"\n\[… ([\d,]+) characters cut …\]\n")


def log_after(execution: Execution, offset: int) -> dict:
    """The run's log after position ``offset`` of everything it logged (what
    the page has shown so far), and the position to ask from next.

    A long log is stored as its head and tail with the number of characters
    cut between them, so positions count the cut characters too: a page that
    fell behind the cut gets a line saying so, then the tail."""
    log = execution.log or ""
    cut = _CUT.search(log)
    if cut is None:
        if offset > len(log):  # the page showed more than there is: another log, start again
            return {"text": log, "offset": len(log), "reset": True}
        return {"text": log[offset:], "offset": len(log), "reset": False}
    head, tail = log[:cut.start()], log[cut.end():]
    tail_start = len(head) + int(cut.group(1).replace(",", ""))
    end = tail_start + len(tail)
    if offset > end:
        return {"text": log, "offset": end, "reset": True}
    if offset < tail_start:
        missed = tail_start - max(offset, len(head))
        return {"text": f"\n[… {missed:,} characters cut …]\n{tail}", "offset": end, "reset": False}
    return {"text": tail[offset - tail_start:], "offset": end, "reset": False}


def log_length(execution: Execution) -> int:
    """The position after everything ``execution`` logged (see ``log_after``)."""
    return log_after(execution, 0)["offset"]
