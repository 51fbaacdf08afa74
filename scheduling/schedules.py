"""Schedule parsing, validation and next-run computation.

Every schedule type reduces to one of three beat primitives: a 5-field cron
expression (cron, daily, weekly, monthly), a fixed interval, or a one-off
instant (once) — or to none at all: a ``manual`` job runs only when triggered
(the facades' one-off work, such as bulk uploads, runs as such jobs). Next run times come from croniter evaluated in the job's IANA
time zone, so DST transitions are handled by the cron engine, not by hand.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from celery.schedules import crontab as celery_crontab
from croniter import croniter
from django.core.exceptions import ValidationError
from django.db.models import TextChoices
from django.utils import timezone as dj_timezone


class ScheduleType(TextChoices):
    """Every schedule type (``Job.schedule_type``'s choices)."""

    CRON = "cron", "Cron expression"
    INTERVAL = "interval", "Interval"
    DAILY = "daily", "Daily (HH:MM)"
    WEEKLY = "weekly", "Weekly (D:HH:MM, 0=Monday)"
    MONTHLY = "monthly", "Monthly (DD:HH:MM)"
    ONCE = "once", "Once (ISO datetime)"
    MANUAL = "manual", "Manual (only when triggered)"


SCHEDULE_TYPES = tuple(ScheduleType.values)
_UTC = ZoneInfo("UTC")
MAX_ONCE_YEAR = 2200
_INTERVAL_UNITS = re.compile(r"^\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$", re.IGNORECASE)


def _invalid(message: str, field: str = "schedule_expression") -> ValidationError:
    return ValidationError({field: [message]})


# Names the tz database ships that are not places: "localtime" is whatever the
# host is set to, "Factory" is a placeholder zone ("-00").
PSEUDO_ZONES = frozenset({"localtime", "Factory", "posixrules"})


def parse_timezone(name: str) -> ZoneInfo:
    if not name or name not in _known_timezones() or name in PSEUDO_ZONES:
        raise _invalid(f"Unknown time zone '{name}'. Use an IANA name such as 'UTC' or 'Europe/Paris'.", "timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _invalid(f"Unknown time zone '{name}'.", "timezone") from None


_TZ_CACHE: set[str] | None = None


def _known_timezones() -> set[str]:
    global _TZ_CACHE
    if _TZ_CACHE is None:
        _TZ_CACHE = available_timezones() | {"UTC"}
    return _TZ_CACHE


def _hh_mm(text: str, what: str, expression: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
    if not match:
        raise _invalid(f"Invalid {what} schedule '{expression}': time must be HH:MM.")
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour > 23 or minute > 59:
        raise _invalid(f"Invalid {what} schedule '{expression}': hour must be 0-23 and minute 0-59.")
    return hour, minute


@dataclass(frozen=True)
class Schedule:
    """A validated schedule. At most one of ``cron``, ``interval``, ``clocked``
    is set; none for a manual schedule."""

    schedule_type: str
    expression: str
    tz: ZoneInfo
    cron: str | None = None
    interval: timedelta | None = None
    clocked: datetime | None = None

    @property
    def timezone_name(self) -> str:
        return self.tz.key

    @property
    def is_manual(self) -> bool:
        return not (self.cron or self.interval or self.clocked)

    # -- next runs ---------------------------------------------------------
    def next_runs(self, count: int = 5, *, after: datetime | None = None, anchor: datetime | None = None) -> list[datetime]:
        """The next ``count`` run times strictly after ``after`` (default now), tz-aware in the job's zone.

        For intervals, runs fall on ``anchor + k * interval`` (anchor: the last
        run, else ``after``)."""
        after = after or dj_timezone.now()
        local_after = after.astimezone(self.tz)
        if self.cron:
            return self._cron_runs(count, local_after)
        if self.interval:
            start = (anchor or after).astimezone(self.tz)
            first = start + self.interval
            if first <= local_after:
                skipped = int((local_after - start) / self.interval)
                first = start + self.interval * (skipped + 1)
                if first <= local_after:
                    first += self.interval
            return [first + self.interval * i for i in range(count)]
        if self.clocked:
            return [self.clocked.astimezone(self.tz)] if self.clocked > after else []
        return []

    def _cron_runs(self, count: int, local_after: datetime) -> list[datetime]:
        runs: list[datetime] = []
        for run in cron_fires(self.cron, self.tz, local_after):
            runs.append(run)
            if len(runs) >= count:
                break
        return runs

    def fires_between(self, after: datetime, until: datetime, *, limit: int = 10_000) -> tuple[int, datetime | None, datetime | None]:
        """(how many, first, last) of the fires in ``(after, until]`` — what
        beat owes when it has not fired since ``after``. Intervals count from
        ``after`` (the last fire). Counting stops at ``limit``."""
        if self.interval:
            count = int((until - after) / self.interval)
            if count <= 0:
                return 0, None, None
            return min(count, limit), after + self.interval, after + self.interval * count
        if not self.cron:
            return 0, None, None
        # Compared in UTC: aware datetimes sharing a tzinfo compare by wall clock (fold ignored).
        count, first, last = 0, None, None
        until = until.astimezone(_UTC)
        for run in cron_fires(self.cron, self.tz, after.astimezone(self.tz)):
            if run.astimezone(_UTC) > until:
                break
            count += 1
            first = first or run
            last = run
            if count >= limit:
                # the last of them is what fires now: find it without counting the rest
                last = latest_cron_fire(self.cron, self.tz, until) or last
                break
        return count, first, last

    def next_run(self, *, after: datetime | None = None, anchor: datetime | None = None) -> datetime | None:
        runs = self.next_runs(1, after=after, anchor=anchor)
        return runs[0] if runs else None

    # -- descriptions ------------------------------------------------------
    def describe(self) -> str:
        if self.is_manual:
            return "Only when triggered (no schedule)"
        if self.interval:
            return f"Every {format_interval_words(self.interval)}"
        if self.clocked:
            return f"Once at {self.clocked.astimezone(self.tz).isoformat()}"
        return f"{cron_in_words(self.cron)} ({self.timezone_name})"

    def trigger_repr(self) -> str:
        """Seed 002's trigger string: ``cron[day='*', hour='9', minute='0']``, ``interval[1:30:00]``."""
        if self.interval:
            return f"interval[{format_timedelta_clock(self.interval)}]"
        if self.clocked:
            return f"date[{self.clocked.astimezone(self.tz).isoformat()}]"
        if self.is_manual:
            return "manual"
        minute, hour, day, month, dow = self.cron.split()
        parts = [("month", month), ("day", day), ("day_of_week", dow), ("hour", hour), ("minute", minute)]
        shown = [f"{k}='{v}'" for k, v in parts if v != "*" or k in ("day", "hour", "minute")]
        return f"cron[{', '.join(shown)}]"

    def short(self) -> str:
        """Compact form for seed 002's ``schedule`` field (``0 9 * * *`` or ``1h 30m``)."""
        if self.interval:
            return format_interval_short(self.interval)
        return self.cron or self.expression or self.schedule_type


def cron_in_words(cron: str) -> str:
    """``cron`` in English, agreeing with its fires: with both day fields
    restricted a day matching either fires (croniter's rule, ``cron_fires``),
    so ``0 9 1 * 1`` reads "At 09:00, on day 1 of the month and on every
    Monday", not cron-descriptor's "..., only on Monday" (an AND)."""
    from cron_descriptor import ExpressionDescriptor, Options

    options = Options()
    options.verbose, options.use_24hour_time_format = False, True
    words = ExpressionDescriptor(cron, options)
    days = croniter.expand(cron)[0]
    if days[2][0] == "*" or days[4][0] == "*":
        return words.get_description()
    weekdays = words.get_day_of_week_description().removeprefix(", ").replace("only on ", "on every ", 1)
    weekdays = weekdays if weekdays.startswith(("on ", "every ")) else f"on {weekdays}"  # "Monday through Friday"
    text = (f"{words.get_time_of_day_description()}{words.get_day_of_month_description()} and {weekdays}"
            f"{words.get_month_description()}{words.get_year_description()}")
    return words.transform_verbosity(text, options.verbose)


def _repeated_wall_clock(run: datetime) -> bool:
    """The second pass through an hour repeated when the clocks fell back."""
    return run.fold == 1 and run.replace(fold=0).utcoffset() != run.utcoffset()


def cron_fires(cron: str, tz: ZoneInfo, after: datetime):
    """Every time ``cron`` fires strictly after ``after``, in ``tz``: the one
    definition of what a cron expression means, used by beat
    (``JobCrontab``), the preview, ``next_run_at`` and the overdue check.

    Standard (Vixie/POSIX) cron, as croniter evaluates it: when both
    day-of-month and day-of-week are restricted, a day matching either fires.

    DST, in the job's zone: a time in the hour skipped when clocks spring
    forward fires once, at the first instant after the jump (02:30 → 03:00,
    croniter's choice, also Vixie cron's). When clocks fall back, a schedule
    with a fixed hour fires once, in the first pass through the repeated hour
    (01:30 EDT, not again at 01:30 EST); an hour wildcard (``*/15 * ...``)
    fires in both passes: real time passes between them."""
    run = after
    while True:
        run = next_cron_fire(cron, tz, run)
        yield run


#: (cron, zone, instant) -> the next fire after it. Beat asks the same question
#: for every job sharing a schedule when a minute's burst comes due (1,000 jobs
#: on ``* * * * *``: one croniter walk instead of a thousand).
_next_fires: dict[tuple[str, str, datetime], datetime] = {}
_NEXT_FIRES_MAX = 50_000


def next_cron_fire(cron: str, tz: ZoneInfo, after: datetime, *, iterator: croniter | None = None) -> datetime:
    """The first fire of ``cron`` strictly after ``after``, in ``tz`` (see
    ``cron_fires``); memoized. ``iterator``: a croniter of ``cron`` to reuse on
    a miss (parsing the expression is most of the cost)."""
    key = (cron, tz.key, after.astimezone(_UTC))
    run = _next_fires.get(key)
    if run is not None:
        return run
    if iterator is None:
        iterator = croniter(cron, after.astimezone(tz))
    else:
        iterator.set_current(after.astimezone(tz), force=True)
    fixed_hour = cron.split()[1] != "*"
    while True:
        run = iterator.get_next(datetime).astimezone(tz)
        if not (fixed_hour and _repeated_wall_clock(run)):
            break
    if len(_next_fires) >= _NEXT_FIRES_MAX:
        _next_fires.clear()
    _next_fires[key] = run
    return run


def latest_cron_fire(cron: str, tz: ZoneInfo, until: datetime) -> datetime | None:
    """The last fire of ``cron`` at or before ``until``."""
    until = until.astimezone(_UTC)
    it = croniter(cron, (until + timedelta(seconds=1)).astimezone(tz))
    for _ in range(1000):
        run = it.get_prev(datetime).astimezone(tz)
        if run.astimezone(_UTC) <= until and not (cron.split()[1] != "*" and _repeated_wall_clock(run)):
            return run
    return None


def format_timedelta_clock(delta: timedelta) -> str:
    total = int(delta.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    clock = f"{hours}:{minutes:02d}:{seconds:02d}"
    return f"{days} day{'s' if days != 1 else ''}, {clock}" if days else clock


def format_interval_short(delta: timedelta) -> str:
    total = int(delta.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (seconds, "s")) if v]
    return " ".join(parts) or "0s"


def format_interval_words(delta: timedelta) -> str:
    total = int(delta.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{v} {u}{'s' if v != 1 else ''}" for v, u in ((hours, "hour"), (minutes, "minute"), (seconds, "second")) if v]
    return " ".join(parts)


def validate_cron_expression(expression: str) -> str:
    """Return the normalised 5-field expression or raise the seed-002 style error."""
    fields = (expression or "").split()
    if len(fields) != 5:
        raise _invalid(
            f"Invalid cron expression: {expression}. Expected 5 parts (minute hour day month day_of_week)"
        )
    fields[4] = _sunday_as_zero(fields[4])
    normalised = " ".join(fields)
    bad_step = _out_of_range_step(fields)
    if bad_step:
        raise _invalid(f"Invalid cron expression: {expression}. {bad_step}")
    try:
        valid = croniter.is_valid(normalised)
    except Exception:  # croniter raises on some malformed inputs instead of returning False
        valid = False
    if valid:
        try:
            # django-celery-beat builds Celery's crontab from the stored fields (stricter
            # than croniter: no L, W, #). Its positional order is not cron's: use names.
            minute, hour, day_of_month, month_of_year, day_of_week = fields
            celery_crontab(minute=minute, hour=hour, day_of_month=day_of_month,
                           month_of_year=month_of_year, day_of_week=day_of_week)
        except Exception:
            valid = False
    if not valid:
        raise _invalid(f"Invalid cron expression: {expression}. A field is out of range or malformed.")
    return normalised


def _sunday_as_zero(day_of_week: str) -> str:
    """Cron's 7 is Sunday, as 0 is; Celery's crontab (which django-celery-beat
    builds from the stored fields) knows only 0."""
    parts = []
    for part in day_of_week.split(","):
        if part == "7":
            part = "0"
        else:
            match = re.fullmatch(r"([0-6])-7", part)
            if match:
                part = f"{match.group(1)}-6,0" if match.group(1) != "0" else "*"
        parts.append(part)
    return ",".join(dict.fromkeys(parts))


_FIELD_RANGES = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 6))


def _out_of_range_step(fields: list[str]) -> str | None:
    """A step larger than its field's range (``0-59/61``) matches only the
    range's start: cron implementations disagree on it, so refuse it."""
    for text, (name, low, high) in zip(fields, _FIELD_RANGES):
        for part in text.split(","):
            if "/" not in part:
                continue
            base, _, step = part.partition("/")
            if not step.isdigit():
                continue  # malformed: croniter says so
            if base in ("*", ""):
                span = high - low + 1
            elif "-" in base and all(p.isdigit() for p in base.split("-", 1)):
                start, end = (int(p) for p in base.split("-", 1))
                span = end - start + 1
            else:
                span = high - low + 1
            if int(step) < 1 or int(step) > span:
                return f"The {name} step /{step} is out of range (1-{max(span, 1)})."
    return None


def parse_interval(expression: str) -> timedelta:
    """``"30"`` is minutes (seed 003); ``"1h 30m"``, ``"45s"`` also accepted (seed 002)."""
    text = str(expression).strip()
    too_long = _invalid(f"Invalid interval '{expression[:40]}': it must be at most 366 days.")
    try:
        if re.fullmatch(r"\d+", text):
            delta = timedelta(minutes=int(text))
        else:
            match = _INTERVAL_UNITS.fullmatch(text) if text else None
            if not match or not any(match.groups()):
                raise _invalid(
                    f"Invalid interval '{expression}': give whole minutes (e.g. '30') or units like '1h 30m' or '45s'."
                )
            hours, minutes, seconds = (int(g or 0) for g in match.groups())
            delta = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    except (OverflowError, ValueError):  # digits beyond what a timedelta holds
        raise too_long from None
    if delta.total_seconds() < 1:
        raise _invalid(f"Invalid interval '{expression}': it must be at least 1 second.")
    if delta > timedelta(days=366):
        raise too_long
    return delta


def parse_schedule(schedule_type: str, expression: str, timezone: str = "UTC", *, now: datetime | None = None) -> Schedule:
    """Validate and normalise a schedule; raise ValidationError naming the field at fault."""
    if schedule_type not in SCHEDULE_TYPES:
        raise _invalid(f"Unknown schedule type '{schedule_type}'. Use one of: {', '.join(SCHEDULE_TYPES)}.", "schedule_type")
    expression = str(expression if expression is not None else "").strip()
    tz = parse_timezone(timezone or "UTC")
    if schedule_type == "manual":
        if expression:
            raise _invalid("A manual schedule takes no expression: leave it empty.")
        return Schedule("manual", "", tz)
    if not expression:
        raise _invalid("This field is required.")

    if schedule_type == "cron":
        return Schedule("cron", expression, tz, cron=validate_cron_expression(expression))
    if schedule_type == "interval":
        return Schedule("interval", expression, tz, interval=parse_interval(expression))
    if schedule_type == "daily":
        hour, minute = _hh_mm(expression, "daily", expression)
        return Schedule("daily", expression, tz, cron=f"{minute} {hour} * * *")
    if schedule_type == "weekly":
        match = re.fullmatch(r"(\d):(\d{1,2}:\d{2})", expression)
        if not match:
            raise _invalid(f"Invalid weekly schedule '{expression}': expected D:HH:MM with D 0-6 (0=Monday).")
        day = int(match.group(1))
        if day > 6:
            raise _invalid(f"Invalid weekly schedule '{expression}': day must be 0-6 (0=Monday, 6=Sunday).")
        hour, minute = _hh_mm(match.group(2), "weekly", expression)
        cron_dow = (day + 1) % 7  # cron counts 0=Sunday
        return Schedule("weekly", expression, tz, cron=f"{minute} {hour} * * {cron_dow}")
    if schedule_type == "monthly":
        match = re.fullmatch(r"(\d{1,2}):(\d{1,2}:\d{2})", expression)
        if not match:
            raise _invalid(f"Invalid monthly schedule '{expression}': expected DD:HH:MM (day of month 1-31).")
        day = int(match.group(1))
        if not 1 <= day <= 31:
            raise _invalid(f"Invalid monthly schedule '{expression}': day of month must be 1-31.")
        hour, minute = _hh_mm(match.group(2), "monthly", expression)
        return Schedule("monthly", expression, tz, cron=f"{minute} {hour} {day} * *")
    # once
    try:
        moment = datetime.fromisoformat(expression.replace("Z", "+00:00"))
    except ValueError:
        raise _invalid(f"Invalid once schedule '{expression}': expected an ISO 8601 datetime such as 2030-01-31T09:00.") from None
    if moment.year >= MAX_ONCE_YEAR:  # before any zone arithmetic: year 9999 ± 14 h overflows
        raise _invalid(f"Invalid once schedule '{expression}': the time must be before the year {MAX_ONCE_YEAR}.")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    if moment <= (now or dj_timezone.now()):
        raise _invalid(f"Invalid once schedule '{expression}': the time must be in the future.")
    return Schedule("once", expression, tz, clocked=moment)
