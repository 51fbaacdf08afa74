"""What beat lists of the PeriodicTasks to find what changed: every enabled
task's version (name, ``date_changed``, in django-celery-beat's window or
not), or on PostgreSQL only the tasks changed lately, vouched for by a
fingerprint of all of them; and the values of the schedule rows the tasks use
(a row edited in place changes no task). A part of
``scheduling.beat.scheduler.Scheduler``, which reads what these find
(``_incremental_read``)."""
from __future__ import annotations

from datetime import timedelta

from django.db.models import BooleanField, Case, Q, TextField, Value, When
from django.db.models.functions import Cast
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, SolarSchedule

from scheduling.beat.fingerprint import database_fingerprint, version_hashes

#: How far before the last listing ``_recent_listing`` looks for changed tasks (clocks
#: and commits a little behind); anything older is found by the fingerprint, and then
#: every task is listed. Not wider: every task changed within it is listed again at
#: each change (100,000 created just before beat started would be, for a minute).
RECENT_MARGIN = timedelta(seconds=5)
# The schedule rows a task's entry is built from (PeriodicTask field, model, the columns it reads).
SCHEDULE_ROWS = (
    ("interval", IntervalSchedule, ("every", "period")),
    ("crontab", CrontabSchedule, ("minute", "hour", "day_of_month", "month_of_year", "day_of_week", "timezone")),
    ("clocked", ClockedSchedule, ("clocked_time",)),
    ("solar", SolarSchedule, ("event", "latitude", "longitude")),
)


class Listings:
    """The listings of ``Scheduler`` (which sets ``_versions``, ``_pks``,
    ``_listed_at``, ``_fingerprint`` and ``_rows`` up in its ``__init__``)."""

    recent_listings = 0  # incremental reads that listed only the tasks changed lately

    def _listing(self, window) -> list[tuple]:
        """(pk, name, version, in window) of every enabled task, in one
        query. "In window" is django-celery-beat's ``enabled_models_qs()``
        (crontabs within ±2 h of their hour, one-offs due within 5 minutes):
        the tasks it would load. Tasks outside it are listed too, so that an
        edit of one is seen as that, not as a change with nothing to read
        (which would cost a full read)."""
        in_window = Case(When(pk__in=window.values("pk"), then=Value(True)), default=Value(False),
                         output_field=BooleanField())
        # date_changed as the database prints it: a version is only compared
        # with another from this same query, and parsing every datetime was
        # most of the query's cost.
        version = Cast("date_changed", TextField())
        return list(self.Model.objects.filter(enabled=True).annotate(in_window=in_window, version=version)
                    .values_list("pk", "name", "version", "in_window"))

    def _recent_listing(self, window) -> tuple[dict, tuple[int, int]] | None:
        """What changed in ``_listing``'s answer since the last listing —
        name -> (pk, version, in window), or None for a task no longer
        enabled — from the tasks whose ``date_changed`` is at most
        ``RECENT_MARGIN`` before that listing, with the database's fingerprint
        of every enabled task: on PostgreSQL, and only when that fingerprint
        (how many, and the sum of a hash of each name and version) is the last
        listing's with exactly these changes; else None, and the whole listing
        is made. So a change with an older ``date_changed`` (a clock behind, a
        late commit), a task deleted or renamed, still comes to light; an edit
        among 100,000 tasks reads and walks a few rows, not all of them
        (docs/benchmarks.md section 1, "100,000 jobs"). The window is not
        re-evaluated for the tasks not listed: the full read every
        ``FULL_SYNC_EVERY_SECONDS`` takes in what entered it meanwhile, as it
        does when nothing changes."""
        if self._fingerprint is None or self._listed_at is None:
            return None
        since = self._listed_at - RECENT_MARGIN
        in_window = Case(When(pk__in=window.filter(date_changed__gte=since).values("pk"), then=Value(True)),
                         default=Value(False), output_field=BooleanField())
        recent = list(self.Model.objects.filter(date_changed__gte=since)
                      .annotate(in_window=in_window, version=Cast("date_changed", TextField()))
                      .values_list("pk", "name", "version", "in_window", "enabled"))
        changes: dict = {}
        before, after = [], []  # (name, version) leaving and entering the fingerprint
        for pk, name, version, in_window_now, enabled in recent:
            listed = self._versions.get(name)
            if listed is not None:
                before.append((name, listed[0]))
            if enabled:
                after.append((name, version))
                changes[name] = (pk, version, in_window_now)
            elif listed is not None:
                changes[name] = None
        hashes = version_hashes(self.Model, before + after)
        count, total = self._fingerprint
        expected = (count - len(before) + len(after), total - sum(hashes[:len(before)]) + sum(hashes[len(before):]))
        fingerprint = database_fingerprint(self.Model)
        if expected != fingerprint:
            return None
        self.recent_listings += 1
        return changes, fingerprint

    def _listed(self, at, pks: dict, fingerprint: tuple[int, int] | None = None) -> None:
        """A listing of every enabled task was made at ``at``: its pks, and the
        database's fingerprint of it (the one the recent listing checked, else
        taken now: a change since makes the next one differ, and then the
        whole listing is made again)."""
        self._pks, self._listed_at = pks, at
        self._fingerprint = fingerprint if fingerprint is not None else database_fingerprint(self.Model)

    def _schedule_rows(self) -> dict:
        """(PeriodicTask field, pk) -> values, of every schedule row an
        enabled task uses: a few rows (tasks share them), in one query."""
        enabled, width = self.Model.objects.filter(enabled=True), max(len(columns) for _, _, columns in SCHEDULE_ROWS)
        kinds = []
        for field, model, columns in SCHEDULE_ROWS:
            used = enabled.filter(**{f"{field}__isnull": False}).values(f"{field}_id")
            # as text (no ZoneInfo or Decimal made per row), padded to one width for the union
            texts = [Cast(column, TextField()) for column in columns]
            texts += [Value("", output_field=TextField())] * (width - len(columns))
            kinds.append(model.objects.order_by().filter(pk__in=used)
                         .values_list(Value(field, output_field=TextField()), "pk", *texts))
        return {(field, pk): tuple(values) for field, pk, *values in kinds[0].union(*kinds[1:], all=True)}

    def _on_edited_rows(self) -> set[str]:
        """Names of the enabled tasks whose schedule row was edited in place
        since it was last read; the rows are remembered as read now."""
        rows = self._schedule_rows()
        edited = [key for key, values in rows.items() if self._rows.get(key, values) != values]
        self._rows = rows
        if not edited:
            return set()
        by_field: dict[str, list[int]] = {}
        for field, pk in edited:
            by_field.setdefault(field, []).append(pk)
        on_edited = Q()
        for field, pks in by_field.items():
            on_edited |= Q(**{f"{field}_id__in": pks})
        names = self.Model.objects.filter(enabled=True).filter(on_edited).values_list("name", flat=True)
        return set(names)
