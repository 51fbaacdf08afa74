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
MAX_ONCE_YEAR = 2200
_INTERVAL_UNITS = re.compile(r"^\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$", re.IGNORECASE)


def _invalid(message: str, field: str = "schedule_expression") -> ValidationError:
    return ValidationError({field: [message]})


def parse_timezone(name: str) -> ZoneInfo:
    if not name or name not in _known_timezones():
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
        # When clocks fall back, croniter yields a fixed-hour time (01:30) in
        # both the summer and the winter offset; wall-clock schedules run once
        # a day, so the repeat is dropped. Hour-wildcard schedules (*/15 * ...)
        # keep both: real time passes between them.
        fixed_hour = self.cron.split()[1] != "*"
        it = croniter(self.cron, local_after)
        runs: list[datetime] = []
        seen_wall_clock: set[datetime] = set()
        while len(runs) < count:
            run = it.get_next(datetime).astimezone(self.tz)
            wall_clock = run.replace(tzinfo=None, fold=0)
            if fixed_hour and wall_clock in seen_wall_clock:
                continue
            seen_wall_clock.add(wall_clock)
            runs.append(run)
        return runs

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
        from cron_descriptor import Options, get_description

        options = Options()
        options.verbose = False
        options.use_24hour_time_format = True
        return f"{get_description(self.cron, options)} ({self.timezone_name})"

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
    normalised = " ".join(fields)
    try:
        valid = croniter.is_valid(normalised)
    except Exception:  # croniter raises on some malformed inputs instead of returning False
        valid = False
    if valid:
        try:
            # beat evaluates Celery's crontab, which is stricter than croniter (no L, W, #).
            celery_crontab(*fields)
        except Exception:
            valid = False
    if not valid:
        raise _invalid(f"Invalid cron expression: {expression}. A field is out of range or malformed.")
    return normalised


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
