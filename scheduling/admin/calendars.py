"""Calendars (days and hours that jobs skip), read-only here: the API and
``./manage jobs calendars`` write them through the services. A calendar's
page shows the next 12 months as a month grid, each day marked open, partly
skipped (some hours: a weekly window, an event) or skipped (the whole day),
as ``scheduling.calendars.calendar_contains`` answers for each hour of it."""
from __future__ import annotations

import calendar as stdlib_calendar
from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from django.contrib import admin
from django.utils import timezone

from jobsite.admin.base import ReadOnlyAdmin
from jobsite.admin.widgets import when
from jobsite.tenancy import scope_to_user
from scheduling.admin.widgets import JobsNamingIt
from scheduling.calendars import calendar_contains
from scheduling.models import Calendar

MONTHS_SHOWN = 12
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


@dataclass
class Day:
    day: date | None  # None: a blank cell before the 1st or after the last
    state: str = "open"  # open | partly | skipped
    hours: list[int] = field(default_factory=list)  # the hours skipped (partly)

    @property
    def title(self) -> str:
        if self.day is None:
            return ""
        if self.state == "skipped":
            return f"{self.day:%a %Y-%m-%d}: skipped all day"
        if self.state == "partly":
            return f"{self.day:%a %Y-%m-%d}: skipped at " + ", ".join(f"{hour:02d}:00" for hour in self.hours)
        return f"{self.day:%a %Y-%m-%d}: open"


@dataclass
class Month:
    title: str
    weeks: list[list[Day]]

    @property
    def skipped_days(self) -> int:
        return sum(1 for week in self.weeks for d in week if d.state == "skipped")


def day_state(calendar: Calendar, day: date, zone: ZoneInfo) -> Day:
    """Which hours of ``day`` (in the calendar's zone) fall inside the calendar:
    asked at the start of each hour (and the day's last minute)."""
    hours = [hour for hour in range(24)
             if calendar_contains(calendar, datetime.combine(day, time(hour), tzinfo=zone))]
    if len(hours) == 24 and calendar_contains(calendar, datetime.combine(day, time(23, 59), tzinfo=zone)):
        return Day(day, "skipped")
    return Day(day, "partly", hours) if hours else Day(day)


def month_grid(calendar: Calendar, *, start: date | None = None, months: int = MONTHS_SHOWN) -> list[Month]:
    """The ``months`` months from ``start``'s (default: this month in the calendar's zone), weeks from Monday."""
    zone = ZoneInfo(calendar.timezone or "UTC")
    start = start or timezone.now().astimezone(zone).date()
    year, month = start.year, start.month
    grid = []
    for _ in range(months):
        weeks = []
        for week in stdlib_calendar.Calendar(firstweekday=0).monthdatescalendar(year, month):
            weeks.append([day_state(calendar, d, zone) if d.month == month else Day(None) for d in week])
        grid.append(Month(f"{date(year, month, 1):%B %Y}", weeks))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return grid


@admin.register(Calendar)
class CalendarAdmin(JobsNamingIt, ReadOnlyAdmin):
    list_display = ["name", "timezone", "job_count", "holidays_country", "updated"]
    search_fields = ["name", "description"]
    fields = ["name", "description", "timezone", "dates", "date_ranges", "weekly_windows", "holidays_country",
              "holidays_subdivision", "job_names", "owner", "organization", "updated"]
    readonly_fields = ["job_names", "updated"]

    def get_queryset(self, request):
        return self.with_job_count(scope_to_user(super().get_queryset(request), request.user))

    @admin.display(description="Jobs that skip it")
    def job_names(self, obj) -> str:
        return self.job_name_list(obj)

    @admin.display(description="Updated", ordering="updated_at")
    def updated(self, obj) -> str:
        return when(obj.updated_at)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        calendar = self.get_object(request, object_id)
        extra = {"months": month_grid(calendar), "weekdays": WEEKDAYS} if calendar is not None else {}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})
