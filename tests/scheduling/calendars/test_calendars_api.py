"""/api/v1/calendars and PUT /api/v1/jobs/{id}/calendars."""
import pytest

from scheduling.models import Calendar

pytestmark = pytest.mark.django_db
URL = "/api/v1/calendars/"


def test_create_read_change_delete(admin_api, api):
    created = admin_api.post(URL, {"name": "DE", "holidays_country": "DE", "timezone": "Europe/Berlin",
                                   "weekly_windows": [{"day": 4, "start": "18:00", "end": "22:00"}]}, format="json")
    assert created.status_code == 201, created.content
    calendar_id = created.json()["id"]
    assert admin_api.get(f"{URL}{calendar_id}").json()["holidays_country"] == "DE"
    changed = admin_api.patch(f"{URL}{calendar_id}", {"dates": ["2026-12-24"]}, format="json")
    assert changed.status_code == 200 and changed.json()["dates"] == ["2026-12-24"]
    bad = admin_api.patch(f"{URL}{calendar_id}", {"weekly_windows": [{"day": 9, "start": "1", "end": "2"}]}, format="json")
    assert bad.status_code == 400 and "weekly_windows" in bad.json()["errors"]
    assert admin_api.post(URL, {"name": "x", "colour": "red"}, format="json").json()["errors"] == {
        "colour": ["Unknown field."]}
    assert api.post(URL, {"name": "mine"}, format="json").status_code == 403
    assert api.get(f"{URL}{calendar_id}").status_code == 404  # root's, in no organization of alice's
    assert admin_api.delete(f"{URL}{calendar_id}").status_code == 200 and not Calendar.objects.exists()


def test_a_job_lists_its_calendars(admin_api, job):
    admin_api.post(URL, {"name": "freeze", "date_ranges": [{"start": "2026-12-20", "end": "2026-12-31"}]}, format="json")
    response = admin_api.put(f"/api/v1/jobs/{job.pk}/calendars", {"calendars": ["freeze"]}, format="json")
    assert response.status_code == 200 and response.json() == {"calendars": ["freeze"]}
    assert admin_api.get(f"/api/v1/jobs/{job.pk}/calendars").json() == {"calendars": ["freeze"]}
    assert [c.name for c in job.calendars.all()] == ["freeze"]
    assert admin_api.get(URL).json()["items"][0]["jobs"] == ["alice-job"]
    missing = admin_api.put(f"/api/v1/jobs/{job.pk}/calendars", {"calendars": ["nope"]}, format="json")
    assert missing.status_code == 400 and "calendars" in missing.json()["errors"]
