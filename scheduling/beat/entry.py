"""What beat fires for a job: the scheduler's Entry class."""
from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo

from celery.schedules import schedstate
from celery.utils.time import maybe_make_aware
from django_celery_beat.schedulers import ModelEntry

from scheduling.beat.crontab import JobCrontab
from scheduling.beat.sync import DISPATCH_TASK, PERIODIC_TASK_PREFIX, crontab_expression
from scheduling.schedules import Schedule


class JobEntry(ModelEntry):
    """django-celery-beat's entry, for a job's PeriodicTask:

    * a cron job fires on ``scheduling.beat.crontab.JobCrontab`` — the very
      ``cron_fires`` the preview, ``next_run_at`` and the overdue check use
      (standard day-of-month/day-of-week semantics, documented DST);
    * the fire carries its identity: ``scheduled_for`` (the due time it fires
      for) and how many earlier fires were missed since the last one
      (``missed``, ``missed_from``) go in the dispatch task's kwargs, so
      ``services.job_dispatch_scheduled`` records one Execution per
      (job, due time) and applies the job's catch-up policy;
    * after a fire, the entry's ``last_run_at`` is the due time it fired for,
      not the moment it was sent: intervals keep their absolute spacing, and a
      beat that takes over (or restarts) counts what it owes from there;
    * an interval entry that is due asks beat to look again at its next due
      time on that grid, not a whole interval after now (Celery's answer):
      a late fire (the catch-up after an outage, a restart or a takeover)
      would otherwise make every later fire as late.

    Other entries (CELERY_BEAT_SCHEDULE's) behave exactly as before.
    """

    MISSED_COUNT_LIMIT = 10_000

    def __init__(self, model, app=None):
        super().__init__(model, app=app)
        self.job_schedule: Schedule | None = None
        self._fire: dict | None = None
        if model.task != DISPATCH_TASK or not model.name.startswith(PERIODIC_TASK_PREFIX):
            return
        if model.crontab is not None:
            cron = crontab_expression(model.crontab)
            zone = str(model.crontab.timezone)
            self.schedule = JobCrontab(cron, zone, app=self.app)
            self.job_schedule = Schedule("cron", cron, ZoneInfo(zone), cron=cron)
        elif model.interval is not None:
            every = model.interval.schedule.run_every
            self.job_schedule = Schedule("interval", "", ZoneInfo("UTC"), interval=every)

    # Celery reads entry.kwargs when it sends the task: the fire's identity is added then.
    @property
    def kwargs(self):
        base = self.__dict__.get("_base_kwargs", {})
        # Celery's tick makes the next entry (reserve → __next__, which records
        # the fire) before it sends this one (apply_entry → kwargs): both see it.
        fire = self._fire if self._fire is not None else self.current_fire()
        return {**base, **fire} if fire else base

    @kwargs.setter
    def kwargs(self, value):
        self.__dict__["_base_kwargs"] = value

    def current_fire(self, now: datetime | None = None) -> dict | None:
        """The due time this entry fires for now, and the fires missed before it."""
        if self.job_schedule is None or self.last_run_at is None:
            return None
        now = now or self._default_now()
        last = maybe_make_aware(self.last_run_at)
        _, _, latest = self.job_schedule.fires_between(last, now, limit=self.MISSED_COUNT_LIMIT)
        if not latest:
            return None
        # Fires owed since beat last fired this entry, not since a pause or an
        # edit (date_changed: saving the task, which a resume or edit does).
        changed = maybe_make_aware(self.model.date_changed) if self.model.date_changed else last
        owed_from = max(last, changed) if changed <= now else last
        missed, first_missed, _ = self.job_schedule.fires_between(owed_from, latest - timedelta(microseconds=1),
                                                                 limit=self.MISSED_COUNT_LIMIT)
        fire = {"scheduled_for": latest.astimezone(dt_timezone.utc).isoformat()}
        if missed:
            fire.update(missed=missed, missed_from=first_missed.astimezone(dt_timezone.utc).isoformat())
        return fire

    def is_due(self):
        state = super().is_due()
        interval = self.job_schedule.interval if self.job_schedule is not None else None
        if not state.is_due or interval is None:
            return state
        now = self._default_now().astimezone(dt_timezone.utc)
        last = maybe_make_aware(self.last_run_at).astimezone(dt_timezone.utc)
        # The fire sent now is the latest due time up to now (current_fire); the next is one interval after it.
        latest = last + interval * max(int((now - last) / interval), 1)
        return schedstate(True, max((latest + interval - now).total_seconds(), 0.0))

    def record_fire(self, now: datetime | None = None) -> dict | None:
        """Fix the fire this entry is sending (what ``kwargs`` then carries)."""
        self._fire = self.current_fire(now)
        return self._fire

    def __next__(self):
        fire = self._fire if self._fire is not None else self.record_fire()
        if self.job_schedule is None:
            entry = super().__next__()
        else:
            # django-celery-beat's __next__ counts the run on the model and builds
            # the next entry from it anew, parsing its crontab again; the model is
            # this same object, so a copy is that entry at a fraction of the cost
            # (a minute's burst makes one per job due).
            model = self.model
            model.last_run_at = self._default_now()
            model.total_run_count += 1
            model.no_changes = True
            entry = self.__class__.__new__(self.__class__)  # (copy.copy would go through __reduce__: a rebuild)
            entry.__dict__.update(self.__dict__)
            entry._fire = None
            entry.total_run_count = model.total_run_count
        if fire:
            fired_for = datetime.fromisoformat(fire["scheduled_for"])
            entry.model.last_run_at = fired_for
            entry.last_run_at = fired_for
        return entry

    next = __next__
