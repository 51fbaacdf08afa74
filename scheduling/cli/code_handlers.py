"""What the jobs-as-code (``apply``, ``export``) and ``backfill`` subcommands do."""
from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import CommandError

from jobsite.cli.output import Console
from scheduling import manifest, services

ACTOR = "cli"


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read(manifest.max_bytes() + 1)
    try:
        with Path(path).open("rb") as handle:
            return handle.read(manifest.max_bytes() + 1)
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from None


def apply_file(console: Console, *, file, dry_run, prune, **_):
    name = "<stdin>" if file == "-" else file
    shown = []

    def show(plan: services.Plan) -> None:
        shown.append(True)
        for line in plan.lines():
            console.out(line, "green" if line.startswith("+") else "red" if line.startswith("-") else None)

    try:
        plan = services.manifest_apply(documents=manifest.read(_read(file), file=name), actor_label=ACTOR,
                                       dry_run=dry_run, prune=prune, on_plan=show, file=name)
    except services.ManifestError as exc:
        stderr = getattr(console.stderr, "_out", console.stderr) or sys.stderr
        for error in exc.errors:  # every problem, one a line, on stderr; the summary is the command's error
            stderr.write(f"{error}\n")
        count = len(exc.errors)
        raise CommandError(f"{name}: {count} problem{'s' if count != 1 else ''}; nothing was changed") from None
    if plan.is_empty:
        return
    if dry_run:
        console.note("Dry run: nothing was changed.")
    else:
        console.success("Applied.")


def export_file(console: Console, *, kinds, **_):
    console.write(manifest.export(kinds=kinds))


def backfill(console: Console, *, job, start, end, dry_run, **_):
    from jobsite.tenancy import SYSTEM
    from scheduling import selectors
    from scheduling.models import Execution

    job = selectors.job_get(user=SYSTEM, job_id=job)
    preview = services.backfill_preview(job=job, start=start, end=end)
    for when, ran in preview.due:
        calendar = (preview.skipped or {}).get(when)
        state = (f"already ran (run {ran.pk}, {ran.status})" if ran is not None
                 else f"skipped: inside calendar '{calendar}'" if calendar else "to run")
        console.out(f"{when:%Y-%m-%d %H:%M %Z}  {state}")
    total, to_run = len(preview.due), len(preview.to_run)
    skipped = len(preview.skipped or {})
    console.out(f"{total} due time{'s' if total != 1 else ''}: {to_run} to run, {total - to_run - skipped} already ran"
                + (f", {skipped} inside the job's calendars." if skipped else "."))
    if dry_run or not to_run:
        if dry_run:
            console.note("Dry run: nothing was queued.")
        return
    group = services.job_backfill(job=job, start=start, end=end, actor_label=ACTOR, trigger=Execution.Trigger.CLI)
    console.success(f"Backfill {group.pk} started: {to_run} run{'s' if to_run != 1 else ''}, one at a time, oldest "
                    f"first. Progress: GET /api/v1/backfills/{group.pk}; stop it: POST /api/v1/backfills/{group.pk}/cancel.")


def calendars(console: Console, *, calendar, start, end, **_):
    from datetime import timedelta

    from django.utils import timezone

    from scheduling.calendars import calendar_day_spans
    from scheduling.models import Calendar

    if calendar is None:
        rows = []
        for item in Calendar.objects.prefetch_related("jobs").order_by("name"):
            holds = [f"{len(item.dates)} dates" if item.dates else "", f"{len(item.date_ranges)} ranges" if item.date_ranges else "",
                     f"{len(item.weekly_windows)} weekly windows" if item.weekly_windows else "",
                     f"holidays {item.holidays_country}{'-' + item.holidays_subdivision if item.holidays_subdivision else ''}"
                     if item.holidays_country else "", "iCalendar" if item.ical else ""]
            rows.append([item.name, item.timezone, ", ".join(h for h in holds if h) or "nothing",
                         ", ".join(j.name for j in item.jobs.all()) or "-"])
        console.table(rows, ["NAME", "ZONE", "HOLDS", "SKIPPED BY"])
        return
    item = Calendar.objects.filter(name=calendar).first()
    if item is None:
        raise CommandError(f"no calendar named {calendar!r}")
    first = (start or timezone.now()).date()
    last = end.date() if end is not None else first + timedelta(days=31)
    if not first < last or (last - first).days > 366:
        raise CommandError("--to must be after --from, at most 366 days on")
    day = first
    while day < last:
        spans = calendar_day_spans(item, day)
        if spans:
            text = "all day" if spans == [("00:00", "24:00")] else ", ".join(f"{a}-{b}" for a, b in spans)
            console.out(f"{day:%Y-%m-%d %a}  {text}")
        day += timedelta(days=1)


HANDLERS = {"apply": apply_file, "export": export_file, "backfill": backfill, "calendars": calendars}
