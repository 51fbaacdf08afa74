"""Calendars honoured by the core: the preview and next_run_at, the overdue
check, validate-schedule, and beat's fires (one by one, in a burst, caught up)."""
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobsite.tenancy import SYSTEM
from scheduling import selectors, services
from scheduling.beat import job_next_runs
from scheduling.models import Execution, Job
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db
UTC = dt_timezone.utc
VALIDATE = "/api/v1/jobs/validate-schedule"


def at(day: date, hour: int = 0, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


def holiday(*days: date, name: str = "holidays"):
    return services.calendar_create(name=name, dates=[d.isoformat() for d in days])


def test_the_preview_and_next_run_at_skip_a_holiday():
    # given a daily 09:00 job whose calendar holds tomorrow
    tomorrow = timezone.now().date() + timedelta(days=1)
    job = JobFactory(name="daily", schedule_type="cron", schedule_expression="0 9 * * *", timezone="UTC")
    holiday(tomorrow)
    services.job_set_calendars(job=job, names=["holidays"])
    job = Job.objects.get(pk=job.pk)
    # when its next runs are previewed from today's midnight
    runs = job_next_runs(job, 3, after=at(tomorrow - timedelta(days=1)))
    # then tomorrow is not among them
    assert runs == [at(tomorrow - timedelta(days=1), 9), at(tomorrow + timedelta(days=1), 9),
                    at(tomorrow + timedelta(days=2), 9)]
    # and a job without calendars previews without asking for any (read as the API reads it)
    plain = JobFactory(name="plain", schedule_type="cron", schedule_expression="0 9 * * *", timezone="UTC")
    plain = selectors.job_get(user=SYSTEM, job_id=plain.pk)
    with CaptureQueriesContext(connection) as queries:
        assert len(job_next_runs(plain, 3, after=at(tomorrow))) == 3
    assert not [q for q in queries.captured_queries if "calendar" in q["sql"]]


def test_a_calendar_that_covers_everything_leaves_no_next_run():
    job = JobFactory(name="never", schedule_type="cron", schedule_expression="* * * * *", timezone="UTC")
    services.calendar_create(name="always", date_ranges=[{"start": "2000-01-01", "end": "2999-12-31"}])
    services.job_set_calendars(job=job, names=["always"])
    assert job_next_runs(Job.objects.get(pk=job.pk), 3) == []  # bounded: 10,000 due times looked through


def test_a_skipped_day_is_never_overdue(settings):
    # given hourly jobs last fired for yesterday noon (beat stopped since): one whose
    # calendar holds yesterday and today, one without calendars, one whose calendar
    # holds only a day long past
    settings.JOBS_OVERDUE_GRACE_SECONDS = 60
    today = timezone.now().date()
    yesterday = today - timedelta(days=1)
    holiday(yesterday, today)
    holiday(today - timedelta(days=30), name="long ago")
    skipped, plain, past = (JobFactory(name=n, schedule_type="cron", schedule_expression="0 * * * *", timezone="UTC")
                            for n in ("skipped", "plain", "past"))
    services.job_set_calendars(job=skipped, names=["holidays"])
    services.job_set_calendars(job=past, names=["long ago"])
    Job.objects.all().update(next_run_at=at(yesterday, 12))
    # then only the jobs whose due time was not a skipped day are overdue, everywhere the check is made
    assert {j.name for j in selectors.job_overdue_list(user=SYSTEM)} == {"plain", "past"}
    assert {j.name for j in selectors.job_list(user=SYSTEM, filters={"overdue": True})} == {"plain", "past"}
    assert selectors.job_stats_overview(user=SYSTEM)["jobs"]["overdue"] == 2
    listed = list(selectors.job_list(user=SYSTEM, filters={}))
    assert {j.name: selectors.job_is_overdue(j) for j in listed} == {"skipped": False, "plain": True, "past": True}
    assert selectors.job_overdue_since(selectors.job_get(user=SYSTEM, job_id="skipped")) is None
    assert selectors.job_overdue_since(selectors.job_get(user=SYSTEM, job_id="past")) == at(yesterday, 12)
    # and jobs read through the selectors are judged without a query for those without calendars
    with CaptureQueriesContext(connection) as queries:
        assert selectors.job_is_overdue(next(j for j in listed if j.name == "plain"))
    assert len(queries) == 0
    # when the skipped days are over and the next open due time passes too, the job is overdue again
    later = at(today + timedelta(days=1), 0, 5)
    assert selectors.job_is_overdue(Job.objects.get(name="skipped"), now=later)
    assert Job.objects.filter(selectors.overdue_q(later), name="skipped").exists()


def test_validate_schedule_previews_through_calendars(api, admin_api, superuser):
    tomorrow = timezone.now().date() + timedelta(days=1)
    services.calendar_create(name="freeze", dates=[tomorrow.isoformat()], actor=superuser)
    body = {"schedule_type": "cron", "schedule_expression": "0 9 * * *", "timezone": "UTC"}
    plain = admin_api.post(VALIDATE, body, format="json").json()
    skipping = admin_api.post(VALIDATE, {**body, "calendars": ["freeze"]}, format="json")
    assert skipping.status_code == 200, skipping.content
    assert skipping.json()["calendars"] == ["freeze"]
    assert f"{tomorrow.isoformat()}T09:00:00+00:00" in plain["next_runs"]
    assert f"{tomorrow.isoformat()}T09:00:00+00:00" not in skipping.json()["next_runs"]
    assert len(skipping.json()["next_runs"]) == 5
    # unknown names, and a calendar the caller cannot see, are a 400 naming them
    unknown = admin_api.post(VALIDATE, {**body, "calendars": ["freeze", "nope", "nada"]}, format="json")
    assert unknown.status_code == 400
    assert unknown.json()["errors"]["calendars"] == ["No calendar named 'nope', 'nada'."]
    hidden = api.post(VALIDATE, {**body, "calendars": ["freeze"]}, format="json")  # root's, in no org of alice's
    assert hidden.status_code == 400 and "'freeze'" in hidden.json()["errors"]["calendars"][0]
    assert api.post(VALIDATE, {**body, "calendars": "freeze"}, format="json").status_code == 400


def minute_now() -> datetime:
    return timezone.now().replace(second=0, microsecond=0)


def test_a_fire_on_a_holiday_is_recorded_skipped_with_the_calendar_name():
    # given every-minute jobs, one skipping today
    due = minute_now()
    skipping = JobFactory(name="skipping", schedule_type="cron", schedule_expression="* * * * *", timezone="UTC")
    holiday(due.date(), name="company holiday")
    services.job_set_calendars(job=skipping, names=["company holiday"])
    # when beat fires it
    fired = services.job_dispatch_scheduled(job_id=skipping.pk, scheduled_for=due)
    # then the fire is recorded skipped, naming the calendar, and next_run_at is the next open due time
    assert fired.status == Execution.Status.SKIPPED
    assert fired.output == "Skipped: inside calendar 'company holiday'" and fired.scheduled_for == due
    assert Job.objects.get(pk=skipping.pk).next_run_at == at(due.date() + timedelta(days=1))
    # and a redelivered fire finds the row, not a second one
    assert services.job_dispatch_scheduled(job_id=skipping.pk, scheduled_for=due).pk == fired.pk


def test_a_burst_skips_the_fires_inside_calendars_and_queues_the_rest():
    due = minute_now()
    jobs = [JobFactory(name=f"burst-{i}", schedule_type="cron", schedule_expression="* * * * *", timezone="UTC",
                       overlap_policy="allow") for i in range(4)]
    holiday(due.date())
    services.job_set_calendars(job=jobs[0], names=["holidays"])
    fires = [services.ScheduledFire(job_id=job.pk, scheduled_for=due) for job in jobs]
    sends = []
    bulk, one_by_one = services.jobs_dispatch_scheduled(fires=fires, sends=sends)
    assert (bulk, one_by_one) == (3, 1)
    runs = {run.job.name: run for run in Execution.objects.filter(scheduled_for=due).select_related("job")}
    assert runs["burst-0"].status == "skipped" and runs["burst-0"].output == "Skipped: inside calendar 'holidays'"
    assert all(runs[f"burst-{i}"].status == "queued" for i in (1, 2, 3))
    assert {job.name for _, job in sends} == {"burst-1", "burst-2", "burst-3"}
    assert {execution.pk for execution, _ in sends} == {runs[f"burst-{i}"].pk for i in (1, 2, 3)}


def test_a_burst_without_calendars_asks_one_query_whatever_its_size():
    due = minute_now()

    def burst_queries(count: int, prefix: str) -> int:
        jobs = [JobFactory(name=f"{prefix}-{i}", schedule_type="cron", schedule_expression="* * * * *",
                           timezone="UTC", overlap_policy="allow") for i in range(count)]
        with CaptureQueriesContext(connection) as queries:
            services.jobs_dispatch_scheduled(fires=[services.ScheduledFire(job_id=j.pk, scheduled_for=due)
                                                    for j in jobs], sends=[])
        return len([q for q in queries.captured_queries if "calendar" in q["sql"]])

    assert burst_queries(2, "small") == burst_queries(20, "big") == 1


def test_caught_up_fires_inside_a_calendar_are_skipped(settings):
    # given an hourly job with catch-up 'all' whose calendar holds yesterday, and beat was down two days
    settings.JOBS_CATCH_UP_MAX = 100
    due = timezone.now().replace(minute=0, second=0, microsecond=0)
    yesterday = due.date() - timedelta(days=1)
    job = JobFactory(name="catching-up", schedule_type="cron", schedule_expression="0 * * * *", timezone="UTC",
                     catch_up_policy="all", overlap_policy="allow")
    holiday(yesterday)
    services.job_set_calendars(job=job, names=["holidays"])
    missed_from = due - timedelta(hours=48)
    # when beat fires it again, owing the 48 hours it missed
    services.job_dispatch_scheduled(job_id=job.pk, scheduled_for=due, missed=48, missed_from=missed_from)
    runs = Execution.objects.filter(job=job).exclude(scheduled_for=None)
    skipped = runs.filter(status="skipped")
    # then none of yesterday's due times ran: each is recorded skipped, the others queued
    assert sorted(r.scheduled_for.date() for r in skipped) == [yesterday] * 24
    assert all(r.output == "Skipped: inside calendar 'holidays'" for r in skipped)
    assert not runs.filter(status="queued", scheduled_for__date=yesterday).exists()
    assert runs.filter(status="queued").count() == 48 - 24 + 1  # and the fire for now


def test_a_single_fire_of_a_job_without_calendars_asks_nothing_more():
    job = JobFactory(name="plain-fire", schedule_type="cron", schedule_expression="* * * * *", timezone="UTC")
    with CaptureQueriesContext(connection) as queries:
        run = services.job_dispatch_scheduled(job_id=job.pk, scheduled_for=minute_now())
    assert run.status == "queued"
    about_calendars = [q["sql"] for q in queries.captured_queries if "calendar" in q["sql"]]
    # one EXISTS, in the query that reads (and locks) the job itself
    assert len(about_calendars) == 1 and '"skips_calendars" FROM "scheduling_job"' in about_calendars[0]


def test_next_run_at_moves_when_the_jobs_calendars_change():
    """Setting, editing or deleting a calendar moves the stored next run at once,
    not at the job's next fire."""
    from scheduling.services.calendars import calendar_create, calendar_delete, calendar_update, job_set_calendars

    job = services.job_create(name="nightly-at-two", job_type="custom", schedule_type="daily",
                              schedule_expression="02:00", timezone="UTC", task_name="demo.sleep",
                              task_kwargs={"seconds": 0})
    first = job.next_run_at
    assert first is not None
    calendar = calendar_create(name="first-night-off", timezone="UTC", dates=[first.date().isoformat()])
    job_set_calendars(job=job, names=["first-night-off"])
    job.refresh_from_db()
    assert job.next_run_at == first + timedelta(days=1)

    second = first + timedelta(days=1)
    calendar_update(calendar=calendar, data={"dates": [first.date().isoformat(), second.date().isoformat()]})
    job.refresh_from_db()
    assert job.next_run_at == first + timedelta(days=2)

    calendar_delete(calendar=calendar)
    job.refresh_from_db()
    assert job.next_run_at == first
