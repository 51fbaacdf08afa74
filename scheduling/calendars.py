"""Calendars: when a job does not fire.

A ``Calendar`` holds whole days (``dates``, ``date_ranges``, a country's
public holidays from the offline ``holidays`` library), hours of a weekday
(``weekly_windows``) — all read in the calendar's time zone — and the events
of an imported iCalendar file (``icalendar``; RRULEs expanded with
dateutil, EXDATEs honoured; an all-day event covers its days in the
calendar's zone). A job lists the calendars to skip; a due time inside one
of them is not run (recorded ``skipped`` with the calendar's name).

``calendar_check`` validates a calendar's fields (the services and the
admin call it); ``calendar_contains``, ``job_skip_calendar`` and
``job_next_runs_open`` answer the questions the fire, the preview,
``next_run_at`` and the overdue check ask. Who asks: beat's fires
(scheduling.services.dispatch: ``fire_skip_reason``, ``next_open_run``,
``jobs_with_calendars``), the preview (scheduling.beat.preview), the overdue
check (scheduling.selectors.expected_run) and validate-schedule
(``calendars_named``, ``next_runs_open``). A job read ``with_calendar_flag``
that lists no calendar costs none of them a query.
"""
from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError

TIME_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")
MAX_ICAL_BYTES = 1_000_000
#: How many due times next runs look through for ones outside the calendars.
MAX_SCAN = 10_000


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError({"timezone": [f"Unknown time zone '{name}'. Use an IANA name such as Europe/Berlin."]}) from None


def _day(value, field: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValidationError({field: [f"'{value}' is not a date (YYYY-MM-DD)."]}) from None


def _clock(value: str) -> time | None:
    """HH:MM; 24:00 (the end of the day) is None."""
    if not isinstance(value, str) or not TIME_RE.match(value):
        raise ValueError(value)
    return None if value == "24:00" else time.fromisoformat(value)


def calendar_check(*, timezone: str, dates, date_ranges, weekly_windows, holidays_country: str,
                   holidays_subdivision: str, ical: str) -> None:
    """Raise ValidationError naming every field of a calendar at fault."""
    errors: dict[str, list[str]] = {}

    def check(field, fn):
        try:
            fn()
        except ValidationError as exc:
            for key, messages in exc.message_dict.items():
                errors.setdefault(field if key == "__all__" else key, []).extend(messages)

    check("timezone", lambda: _zone(timezone))
    if not isinstance(dates, list):
        errors["dates"] = ['Must be a list of dates, e.g. ["2026-12-24"].']
    else:
        for value in dates:
            check("dates", lambda value=value: _day(value, "dates"))
    if not isinstance(date_ranges, list) or not all(isinstance(r, dict) and set(r) == {"start", "end"} for r in date_ranges):
        errors["date_ranges"] = ['Must be a list of {"start": "YYYY-MM-DD", "end": "YYYY-MM-DD"}.']
    else:
        for rng in date_ranges:
            try:
                if _day(rng["start"], "date_ranges") > _day(rng["end"], "date_ranges"):
                    errors.setdefault("date_ranges", []).append(f"{rng['start']} to {rng['end']}: the end is before the start.")
            except ValidationError as exc:
                errors.setdefault("date_ranges", []).extend(exc.message_dict["date_ranges"])
    if not isinstance(weekly_windows, list):
        errors["weekly_windows"] = ['Must be a list of {"day": 0-6, "start": "HH:MM", "end": "HH:MM"}.']
    else:
        for window in weekly_windows:
            problem = _window_problem(window)
            if problem:
                errors.setdefault("weekly_windows", []).append(problem)
    if holidays_subdivision and not holidays_country:
        errors["holidays_country"] = ["Give the country of the region."]
    if holidays_country:
        import holidays

        try:
            holidays.country_holidays(holidays_country, subdiv=holidays_subdivision or None, years=2026)
        except NotImplementedError:
            errors["holidays_country"] = [f"No public holidays known for country '{holidays_country}' (ISO code, e.g. DE)."]
        except Exception as exc:  # noqa: BLE001 - the library says which region is unknown
            errors["holidays_subdivision"] = [str(exc)[:300]]
    if ical:
        if len(ical.encode("utf-8", "surrogatepass")) > MAX_ICAL_BYTES:
            errors["ical"] = [f"At most {MAX_ICAL_BYTES} bytes."]
        else:
            try:
                _ical_events(ical)
            except ValueError as exc:
                errors["ical"] = [f"Not a readable iCalendar file: {str(exc)[:300]}"]
    if errors:
        raise ValidationError(errors)


def _window_problem(window) -> str | None:
    if not isinstance(window, dict) or set(window) != {"day", "start", "end"}:
        return f'{window!r}: use {{"day": 0-6, "start": "HH:MM", "end": "HH:MM"}} (0=Monday).'
    day = window["day"]
    if not isinstance(day, int) or isinstance(day, bool) or not 0 <= day <= 6:
        return f"{window!r}: day is 0 (Monday) to 6 (Sunday)."
    try:
        start, end = _clock(window["start"]), _clock(window["end"])
    except ValueError:
        return f"{window!r}: times are HH:MM (the end may be 24:00)."
    if start is None or (end is not None and end <= start):
        return f"{window!r}: the end must be after the start, the same day (a window past midnight is two windows)."
    return None


# ---------------------------------------------------------------------------
# Is a moment inside?
# ---------------------------------------------------------------------------
@lru_cache(maxsize=256)
def _holidays(country: str, subdivision: str, year: int) -> frozenset[date]:
    import holidays

    return frozenset(holidays.country_holidays(country, subdiv=subdivision or None, years=year))


@lru_cache(maxsize=64)
def _ical_events(text: str) -> tuple:
    """(start, duration, rrule text or "", exdates, all_day) per VEVENT."""
    import icalendar

    try:
        parsed = icalendar.Calendar.from_ical(text)
    except Exception as exc:  # noqa: BLE001 - icalendar raises several types for a bad file
        raise ValueError(str(exc)) from None
    events = []
    for event in parsed.walk("VEVENT"):
        if event.get("DTSTART") is None:
            continue
        start = event.decoded("DTSTART")
        all_day = not isinstance(start, datetime)
        if event.get("DTEND") is not None:
            duration = event.decoded("DTEND") - start
        elif event.get("DURATION") is not None:
            duration = event.decoded("DURATION")
        else:
            duration = timedelta(days=1) if all_day else timedelta(0)
        rrule = event.get("RRULE")
        exdates = []
        for ex in event.get("EXDATE", []) if isinstance(event.get("EXDATE"), list) else [event.get("EXDATE")]:
            if ex is not None:
                exdates.extend(d.dt for d in ex.dts)
        rule = rrule.to_ical().decode() if rrule is not None else ""
        if rule:
            from dateutil.rrule import rrulestr

            try:  # refused when the file is saved, not first when a fire asks
                naive = start if all_day else start.replace(tzinfo=None)
                rrulestr(rule, dtstart=datetime.combine(naive, time(0)) if all_day else naive)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"RRULE {rule}: {exc}") from None
        if not isinstance(duration, timedelta) or duration < timedelta(0):
            raise ValueError("an event ends before it starts")
        events.append((start, duration, rule, tuple(exdates), all_day))
    return tuple(events)


def _in_ical(text: str, moment: datetime, zone: ZoneInfo) -> bool:
    from dateutil.rrule import rrulestr

    for start, duration, rule, exdates, all_day in _ical_events(text):
        if all_day:  # whole days in the calendar's zone
            start = datetime.combine(start, time(0), tzinfo=zone)
            exdates = tuple(datetime.combine(d if isinstance(d, date) and not isinstance(d, datetime) else d.date(),
                                             time(0), tzinfo=zone) for d in exdates)
        elif start.tzinfo is None:  # floating time: the calendar's zone
            start = start.replace(tzinfo=zone)
        if not rule:
            if start <= moment < start + duration:
                return True
            continue
        if all_day:
            # the rule recurs in local days: walk it in the zone's wall clock, not in UTC
            local = moment.astimezone(zone).replace(tzinfo=None)
            occurrence = rrulestr(rule, dtstart=start.replace(tzinfo=None)).before(local, inc=True)
            if occurrence is not None:
                occurrence = occurrence.replace(tzinfo=zone)
        else:
            occurrence = rrulestr(rule, dtstart=start).before(moment, inc=True)
        if occurrence is None or occurrence in exdates:
            continue
        if occurrence <= moment < occurrence + duration:
            return True
    return False


def calendar_contains(calendar, moment: datetime) -> bool:
    """Whether ``moment`` (tz-aware) falls inside ``calendar``."""
    zone = _zone(calendar.timezone)
    local = moment.astimezone(zone)
    day = local.date()
    if day.isoformat() in (calendar.dates or ()):
        return True
    for rng in calendar.date_ranges or ():
        if rng["start"] <= day.isoformat() <= rng["end"]:
            return True
    for window in calendar.weekly_windows or ():
        if window["day"] == local.weekday():
            start, end = _clock(window["start"]), _clock(window["end"])
            if start <= local.time().replace(tzinfo=None) and (end is None or local.time().replace(tzinfo=None) < end):
                return True
    if calendar.holidays_country and day in _holidays(calendar.holidays_country, calendar.holidays_subdivision, day.year):
        return True
    return bool(calendar.ical) and _in_ical(calendar.ical, moment, zone)


#: The annotation ``with_calendar_flag`` adds: whether a job lists any calendar.
FLAG = "skips_calendars"


def with_calendar_flag(queryset):
    """``queryset`` of jobs, each knowing whether it lists any calendar (an
    EXISTS in the same query): ``job_calendars`` then asks nothing more of a
    job with none."""
    from django.db.models import Exists, OuterRef

    from scheduling.models import Calendar

    return queryset.annotate(**{FLAG: Exists(Calendar.jobs.through.objects.filter(job_id=OuterRef("pk")))})


def jobs_with_calendars(job_ids) -> set[int]:
    """Which of ``job_ids`` list any calendar (one query, a few for very many ids)."""
    from jobsite.db import id_batches
    from scheduling.models import Calendar

    through = Calendar.jobs.through.objects
    found: set[int] = set()
    for batch in id_batches(list(job_ids), alias=through.db):
        found.update(through.filter(job_id__any_of=batch).values_list("job_id", flat=True))
    return found


def job_calendars(job) -> list:
    """The calendars ``job`` skips (cached on the instance for a burst of
    questions). No query when they were prefetched (``prefetch_related("calendars")``)
    or the job was read ``with_calendar_flag`` and lists none."""
    cached = getattr(job, "_skip_calendars", None)
    if cached is None:
        if not job.pk or getattr(job, FLAG, None) is False:
            cached = []
        else:
            cached = list(job.calendars.all())
        job._skip_calendars = cached
    return cached


def first_calendar(calendars, due: datetime):
    """The first of ``calendars`` (by name) that ``due`` falls in, or None."""
    for calendar in sorted(calendars, key=lambda c: c.name):
        if calendar_contains(calendar, due):
            return calendar
    return None


def job_skip_calendar(job, due: datetime):
    """The first of the job's calendars (by name) that ``due`` falls in, or None."""
    calendars = job_calendars(job)
    return first_calendar(calendars, due) if calendars else None


def skip_reason(calendar) -> str:
    """What a skipped fire records."""
    return f"Skipped: inside calendar '{calendar.name}'"


def fire_skip_reason(job, due: datetime) -> str | None:
    """Why beat's fire of ``job`` for ``due`` is not run (recorded ``skipped``
    with this as its output): it falls inside one of the job's calendars.
    None: it runs. No query for a job read ``with_calendar_flag`` that lists none."""
    calendar = job_skip_calendar(job, due)
    return skip_reason(calendar) if calendar is not None else None


def next_runs_open(calendars, runs_after, count: int) -> list[datetime]:
    """The next ``count`` due times outside ``calendars``. ``runs_after(n,
    after)`` is the schedule's own next runs (``after`` None: from its start);
    looked through up to MAX_SCAN due times."""
    if not calendars:
        return list(runs_after(count, None))[:count]
    out: list[datetime] = []
    after = None
    scanned = 0
    while len(out) < count and scanned < MAX_SCAN:
        batch = runs_after(min(200, MAX_SCAN - scanned), after)
        if not batch:
            break
        scanned += len(batch)
        for due in batch:
            if first_calendar(calendars, due) is None:
                out.append(due)
                if len(out) == count:
                    break
        if after is not None and batch[-1] <= after:
            break  # a schedule that does not move on (defensive: never loop)
        after = batch[-1]
    return out


def job_next_runs_open(job, runs_after, count: int) -> list[datetime]:
    """``next_runs_open`` through the job's own calendars."""
    return next_runs_open(job_calendars(job), runs_after, count)


def next_open_run(job, first: datetime | None, schedule) -> datetime | None:
    """``first`` (a due time of the job's ``schedule``) when it is outside the
    job's calendars; else the next due time after it that is (None: none
    within MAX_SCAN). What ``next_run_at`` and the overdue check expect."""
    if first is None or job_skip_calendar(job, first) is None:
        return first
    runs = job_next_runs_open(job, lambda n, after: schedule.next_runs(n, after=after or first, anchor=first), 1)
    return runs[0] if runs else None


def calendars_named(names, *, user) -> list:
    """The calendars called ``names`` that ``user`` can see; a ValidationError
    on ``calendars`` naming those that are not."""
    from jobsite.tenancy import scope_to_user
    from scheduling.models import Calendar

    names = list(dict.fromkeys(names))
    found = list(scope_to_user(Calendar.objects.all(), user).filter(name__in=names)) if names else []
    missing = [name for name in names if name not in {c.name for c in found}]
    if missing:
        raise ValidationError({"calendars": [f"No calendar named {', '.join(repr(n) for n in missing)}."]})
    return found


SPAN_STEP = timedelta(minutes=5)


def calendar_day_spans(calendar, day: date) -> list[tuple[str, str]]:
    """The parts of ``day`` (in the calendar's zone) inside the calendar, as
    ("HH:MM", "HH:MM") spans, to five minutes (a month view: which days and hours it skips)."""
    zone = _zone(calendar.timezone)
    moment = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    spans, opened = [], None
    while moment < end:
        inside = calendar_contains(calendar, moment)
        if inside and opened is None:
            opened = moment
        elif not inside and opened is not None:
            spans.append((f"{opened:%H:%M}", f"{moment:%H:%M}"))
            opened = None
        moment = (moment.astimezone(ZoneInfo("UTC")) + SPAN_STEP).astimezone(zone)
    if opened is not None:
        spans.append((f"{opened:%H:%M}", "24:00"))
    return spans
