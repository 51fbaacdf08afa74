"""The admin's mends of issue 25: the job form's run-control fields, the
concurrency-group / maintenance-pause / calendar pages, the maintenance line
in the operator banner, and a job's Backfill page."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from scheduling.executors import DEFAULT_KIND
from scheduling.models import Backfill, Calendar, Job
from scheduling.services.limits import concurrency_group_set
from scheduling.services.pause_all import maintenance_pause, maintenance_resume
from tests.factories import ExecutionFactory, JobFactory

pytestmark = pytest.mark.django_db


def job_post(**extra) -> dict:
    """A job form's POST as a script might send it: no catch-up policy, no jitter."""
    return {
        "name": "nightly-export", "title": "", "description": "", "kind": DEFAULT_KIND, "job_type": "custom",
        "schedule_type": "interval", "schedule_expression": "60", "timezone": "UTC", "task_name": "tests.echo",
        "task_args": "[]", "task_kwargs": "{}", "config": "{}", "queue": "default", "priority": 5,
        "timeout_seconds": 60, "max_retries": 0, "retry_backoff_seconds": 60, "overlap_policy": "skip",
        "is_enabled": "on", "status": "active", **extra,
    }


def test_a_job_posted_without_its_defaulted_settings_gets_the_model_defaults(admin_client):
    response = admin_client.post(reverse("admin:scheduling_job_add"), job_post())
    assert response.status_code == 302, response.content.decode()[:3000]
    job = Job.objects.get(name="nightly-export")
    assert (job.catch_up_policy, job.jitter_seconds) == (Job._meta.get_field("catch_up_policy").default, 0)


def test_a_defaulted_setting_sent_empty_is_still_required(admin_client):
    response = admin_client.post(reverse("admin:scheduling_job_add"), job_post(jitter_seconds=""))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["jitter_seconds"] == ["This field is required."]


def test_the_job_form_sets_a_run_limit_and_a_concurrency_group(admin_client):
    group = concurrency_group_set(name="warehouse", max_runs=2)
    page = admin_client.get(reverse("admin:scheduling_job_add")).content.decode()
    assert 'name="max_concurrent_runs"' in page and 'name="concurrency_group"' in page
    response = admin_client.post(reverse("admin:scheduling_job_add"), job_post(
        overlap_policy="allow", max_concurrent_runs=3, concurrency_group=group.pk))
    assert response.status_code == 302
    job = Job.objects.get(name="nightly-export")
    assert (job.max_concurrent_runs, job.concurrency_group_id) == (3, group.pk)


def test_a_run_limit_the_service_refuses_is_a_form_error_on_its_field(admin_client):
    response = admin_client.post(reverse("admin:scheduling_job_add"), job_post(max_concurrent_runs=3))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["max_concurrent_runs"]
    assert "Applies to overlap policy 'allow'" in errors[0]
    assert not Job.objects.filter(name="nightly-export").exists()


def test_concurrency_groups_and_pauses_are_listed_read_only(admin_client):
    group = concurrency_group_set(name="warehouse", max_runs=2, description="the warehouse's connections")
    JobFactory(name="loader", overlap_policy="allow", concurrency_group=group)
    page = admin_client.get(reverse("admin:scheduling_concurrencygroup_changelist")).content.decode()
    assert "warehouse" in page and "the warehouse&#x27;s connections" in page
    detail = admin_client.get(reverse("admin:scheduling_concurrencygroup_change", args=[group.pk])).content.decode()
    assert "loader" in detail and 'name="_save"' not in detail
    assert admin_client.get(reverse("admin:scheduling_concurrencygroup_add")).status_code == 403

    maintenance_pause(reason="database upgrade", until=timezone.now() + timedelta(hours=2))
    page = admin_client.get(reverse("admin:scheduling_maintenancepause_changelist")).content.decode()
    assert "the whole site is paused for maintenance until" in page and "database upgrade" in page


def test_the_banner_says_the_site_is_paused_on_every_admin_page_until_resumed(admin_client):
    maintenance_pause(reason="database upgrade")
    for name in ("admin:scheduling_job_changelist", "admin:scheduling_execution_changelist"):
        page = admin_client.get(reverse(name)).content.decode()
        assert "Maintenance: the whole site is paused for maintenance until resumed (database upgrade)" in page
        assert reverse("admin:scheduling_maintenancepause_changelist") in page
    maintenance_resume()
    page = admin_client.get(reverse("admin:scheduling_job_changelist")).content.decode()
    assert "Maintenance:" not in page


def test_a_calendars_page_shows_the_next_12_months_with_its_skipped_days(admin_client):
    today = timezone.now().date()
    skipped = today + timedelta(days=3)
    calendar = Calendar.objects.create(
        name="release-freeze", timezone="UTC", dates=[skipped.isoformat()],
        weekly_windows=[{"day": 0, "start": "09:00", "end": "11:00"}])
    page = admin_client.get(reverse("admin:scheduling_calendar_change", args=[calendar.pk])).content.decode()
    assert page.count('class="ops-month"') == 12
    assert f'class="ops-day-skipped" title="{skipped:%a %Y-%m-%d}: skipped all day" data-day="{skipped}"' in page
    monday = today + timedelta(days=(7 - today.weekday()) % 7 or 7)
    if monday != skipped:
        assert (f'class="ops-day-partly" title="{monday:%a %Y-%m-%d}: skipped at 09:00, 10:00" '
                f'data-day="{monday}"') in page
    open_day = next(today + timedelta(days=n) for n in range(1, 9)
                    if (today + timedelta(days=n)).weekday() != 0 and today + timedelta(days=n) != skipped)
    assert f'class="ops-day-open" title="{open_day:%a %Y-%m-%d}: open" data-day="{open_day}"' in page


def test_backfill_shows_the_plan_then_starts_the_runs(admin_client):
    job = JobFactory(name="hourly", schedule_type="cron", schedule_expression="0 * * * *")
    end = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    start = end - timedelta(hours=3)
    ran = ExecutionFactory(job=job, scheduled_for=start + timedelta(hours=1))
    url = reverse("admin:scheduling_job_backfill", args=[job.pk])
    assert f'href="{url}"' in admin_client.get(reverse("admin:scheduling_job_change", args=[job.pk])).content.decode()
    form = {"start": f"{start:%Y-%m-%d %H:%M}", "end": f"{end:%Y-%m-%d %H:%M}"}

    plan = admin_client.post(url, {**form, "dry_run": "on"}).content.decode()
    assert "The plan: 2 to run of 3 due times" in plan
    assert f"already ran: run {ran.pk} (success)" in plan and plan.count("to run</td>") == 2
    assert not Backfill.objects.exists()

    response = admin_client.post(url, form)
    assert response.status_code == 302
    backfill = Backfill.objects.get(job=job)
    assert len(backfill.due_times) == 2

    # the page lists it while it goes, with a cancel that stops what has not run
    page = admin_client.get(url).content.decode()
    assert f'id="ops-backfill-cancel-{backfill.pk}"' in page and "0 of 2 finished, 1 queued" in page
    first = backfill.current_execution
    response = admin_client.post(url, {"cancel": str(backfill.pk)}, follow=True)
    assert f"Backfill {backfill.pk} cancelled: 1 due time will not run." in response.content.decode()
    backfill.refresh_from_db()
    first.refresh_from_db()
    assert (backfill.status, first.status, backfill.queued) == ("cancelled", "cancelled", 1)
    assert "ops-backfill-cancel" not in admin_client.get(url).content.decode()
    # a second cancel, or one of no backfill of this job, says so and changes nothing
    again = admin_client.post(url, {"cancel": str(backfill.pk)}, follow=True).content.decode()
    assert f"Backfill {backfill.pk} is already cancelled." in again
    assert "No such backfill of this job." in admin_client.post(url, {"cancel": "x"}, follow=True).content.decode()


def test_a_backfill_the_service_refuses_is_a_form_error(admin_client):
    job = JobFactory(name="hourly", schedule_type="cron", schedule_expression="0 * * * *")
    future = timezone.now() + timedelta(days=1)
    response = admin_client.post(reverse("admin:scheduling_job_backfill", args=[job.pk]),
                                 {"start": f"{timezone.now():%Y-%m-%d %H:%M}", "end": f"{future:%Y-%m-%d %H:%M}"})
    assert response.status_code == 400
    assert "the end may not be in the future" in response.content.decode()
    assert not Backfill.objects.exists()


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"])
def test_when_writes_what_djangos_date_format_writes(zone):
    """``when`` goes through strftime for speed: the text must stay Django's (jobsite/formats)."""
    from zoneinfo import ZoneInfo

    from django.utils import formats

    from jobsite.admin.widgets import time_formatter, when, when_stacked

    tz = ZoneInfo(zone)
    moments = [timezone.now(), timezone.now().replace(month=7, day=1), timezone.now().replace(month=1, day=9, hour=3)]
    for moment in moments:
        local = moment.astimezone(tz)
        assert when(moment, tz=tz) == formats.date_format(local, "DATETIME_FORMAT") == time_formatter(tz=tz)(moment)
    with timezone.override(tz):
        local = timezone.localtime(moments[0])
        assert when_stacked(moments[0]) == (f'<span class="ops-nowrap">{formats.date_format(local, "DATE_FORMAT")}'
                                            f'</span><br><span class="ops-nowrap">'
                                            f'{formats.date_format(local, "H:i:s T")}</span>')


def test_formats_without_a_strftime_twin_are_left_to_django():
    from django.utils import formats

    from jobsite.admin.widgets import format_time, strftime_pattern

    assert strftime_pattern("Y-m-d H:i:s T") == "%Y-%m-%d %H:%M:%S %Z"
    assert strftime_pattern(r"\a\t H:i, 100%") == "at %H:%M, 100%%"
    assert strftime_pattern("D, j N Y") is None  # names and unpadded days: Django's own
    moment = timezone.now()
    assert format_time(moment, "D, j N Y") == formats.date_format(moment, "D, j N Y")


def test_the_job_pages_duration_chart_is_drawn_by_the_shared_chart_code(admin_client):
    job = JobFactory(name="timed")
    for seconds in (1.0, 2.0, 2.0, 3.0, 9.0):
        ExecutionFactory(job=job, duration_seconds=seconds)
    page = admin_client.get(reverse("admin:scheduling_job_change", args=[job.pk])).content.decode()
    chart = page[page.index('id="ops-duration-chart"'):].split("</svg>")[0]
    assert 'class="ops-svg-chart"' in chart and chart.count("<polyline") == 3 and chart.count("<circle") == 5
    assert "p50 2.0s" in chart and "p95 9.0s" in chart and "<script" not in chart
    assert ": 9.0s</title>" in chart  # each dot says its run's duration


def test_lines_axis_steps_fit_durations_under_a_second():
    from jobsite.admin.charts import Line, lines, nice_ceiling

    assert [nice_ceiling(v) for v in (0, 0.03, 0.9, 7, 230)] == [1.0, 0.04, 2.0, 8.0, 400.0]
    svg = lines(labels=["a", "b"], series=[Line("x <y>", "#000", [0.01, 0.03])], tick_labels={0: "a"}, title="t")
    assert "x &lt;y&gt;" in svg and ">0.04<" in svg and ">0.02<" in svg


def test_a_job_may_not_be_named_apply_the_apis_jobs_as_code_route(admin_client):
    response = admin_client.post(reverse("admin:scheduling_job_add"), job_post(name="apply"))
    assert response.status_code == 200
    assert "name" in response.context["adminform"].form.errors
    assert not Job.objects.filter(name="apply").exists()
