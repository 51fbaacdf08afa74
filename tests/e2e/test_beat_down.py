"""How soon /health and the admin's banner see a stopped beat: a real
``celery beat`` (the project's scheduler writing its heartbeat), stopped
hard. While it runs, neither says it is down (no flapping); once it is
gone, both do within 30 seconds."""
import time

import pytest

from jobsite.services_health import BEAT_DOWN_AFTER_SECONDS, health_report
from scheduling import dashboard
from tests.e2e.test_beat import running_beat

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def beat_is_up() -> bool:
    return health_report(include_workers=False)["checks"]["beat"]["ok"]


def banner_says_beat_is_down() -> bool:
    return any(warning.text.startswith("Beat's last heartbeat") for warning in dashboard.operator_warnings())


def test_health_marks_a_stopped_beat_down_within_30_seconds_and_never_a_running_one(settings):
    settings.HEALTH_DISK_MIN_FREE_MB = 1
    with running_beat() as beat:
        # while it runs, over more than two of its heartbeat periods: up, every time
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            assert beat_is_up()
            assert not banner_says_beat_is_down()
            time.sleep(0.5)
        beat.kill()  # as a crash or an OOM kill: no clean shutdown
        beat.wait(timeout=10)
        stopped = time.monotonic()
        while beat_is_up():
            assert time.monotonic() - stopped < 30, "beat still reported up 30 s after it stopped"
            time.sleep(0.5)
        down_after = time.monotonic() - stopped
    assert banner_says_beat_is_down()
    assert down_after <= BEAT_DOWN_AFTER_SECONDS + 2
    print(f"beat reported down {down_after:.1f} s after it stopped")
