"""The one format for durations and relative times (jobsite.humanize), used by
the admin and the CLI alike."""
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest

from jobsite import humanize
from jobsite.admin.widgets import progress_bar, relative_when

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=dt_timezone.utc)


@pytest.mark.parametrize("offset, shown", [
    (0.2, "just now"), (-30, "30s ago"), (-180, "3m ago"), (125 * 60, "in 2h 5m"),
    (-(2 * 86400 + 3 * 3600), "2d 3h ago"), (86400, "in 1d"),
])
def test_relative(offset, shown):
    assert humanize.relative(NOW + timedelta(seconds=offset), NOW) == shown


def test_relative_and_duration_of_nothing():
    assert humanize.relative(None) == "-"
    assert humanize.duration(None, empty="") == ""


def test_relative_when_keeps_the_exact_time_on_hover(settings):
    settings.TIME_ZONE = "UTC"
    html = relative_when(NOW - timedelta(minutes=3), now=NOW)
    assert ">3m ago</time>" in html
    assert 'datetime="2026-12-07T11:57:00+00:00"' in html
    assert "11:57:00" in html.split('title="')[1]


def test_progress_bar_shows_the_failed_part_and_eta():
    html = progress_bar(60, failed_percent=10, eta_seconds=150)
    assert 'style="width:50.00%"' in html and 'style="width:10.00%"' in html
    assert "60% · ETA 2m 30s" in html
    assert progress_bar(None) == "-"
    assert "ETA" not in progress_bar(100, eta_seconds=0)
