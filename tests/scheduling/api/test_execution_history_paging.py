"""The run history's paging (scheduling.pagination): cursors (``next`` /
``cursor``) on GET /api/v1/executions/ and GET /api/v1/jobs/{id}/executions/,
totals exact for small lists and estimated above a threshold, and the page/size
contract beside them."""
import base64
import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from scheduling import pagination
from scheduling.models import Execution
from tests.factories import ExecutionFactory

pytestmark = pytest.mark.django_db

EXECUTIONS = "/api/v1/executions/"


def runs(job, count, **fields):
    return [ExecutionFactory(job=job, **fields) for _ in range(count)]


def newest_first(queryset):
    return list(queryset.order_by("-created_at", "-id").values_list("id", flat=True))


def walk(client, path, size, **params):
    """Every page by following ``next`` from the first; the ids per page."""
    pages, cursor = [], None
    while True:
        query = {"size": size, **params, **({"cursor": cursor} if cursor else {})}
        response = client.get(path, query)
        assert response.status_code == 200, response.json()
        body = response.json()
        pages.append([item["id"] for item in body["items"]])
        cursor = body["next"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "next never ended"


def same_instant(executions, when):
    Execution.objects.filter(pk__in=[e.pk for e in executions]).update(created_at=when)


# ---------------------------------------------------------------------------
# Cursors
# ---------------------------------------------------------------------------
def test_following_next_lists_every_run_once_in_order(admin_api, job, org_mate_job):
    made = runs(job, 9) + runs(org_mate_job, 8)
    # runs made in the same instant (a burst of fires): the id decides their order
    same_instant(made[3:9], timezone.now() - timedelta(minutes=5))
    pages = walk(admin_api, EXECUTIONS, 4)
    assert [len(page) for page in pages] == [4, 4, 4, 4, 1]
    assert sum(pages, []) == newest_first(Execution.objects.all())


def test_a_cursor_page_is_not_shifted_by_newer_runs(admin_api, job):
    older = runs(job, 6)
    first = admin_api.get(EXECUTIONS, {"size": 3}).json()
    # given three new runs after the first page was read
    runs(job, 3)
    # when the client follows next
    second = admin_api.get(EXECUTIONS, {"size": 3, "cursor": first["next"]}).json()
    # then it reads on from where it was: nothing repeated, nothing skipped, and the end is the end
    expected = [e.pk for e in reversed(older)]
    assert [item["id"] for item in first["items"] + second["items"]] == expected
    assert second["next"] is None
    # the page/size contract, by contrast, shifts by the new runs
    assert [item["id"] for item in admin_api.get(EXECUTIONS, {"size": 3, "page": 2}).json()["items"]] == expected[:3]


def test_the_last_page_has_no_next_and_a_cursor_answer_has_no_count(admin_api, job):
    runs(job, 4)
    first = admin_api.get(EXECUTIONS, {"size": 2}).json()
    last = admin_api.get(EXECUTIONS, {"size": 2, "cursor": first["next"]}).json()
    assert set(last) == {"items", "size", "next"}
    assert (len(last["items"]), last["size"], last["next"]) == (2, 2, None)


@pytest.mark.parametrize("path_of", [
    lambda job: (EXECUTIONS, {"job_id": job.pk, "status": "failed"}),
    lambda job: (f"/api/v1/jobs/{job.pk}/executions/", {"status": "failed"}),
])
def test_cursor_pages_keep_the_filters(admin_api, job, org_mate_job, path_of):
    runs(job, 5, status="failed")
    runs(job, 3, status="success")
    runs(org_mate_job, 4, status="failed")
    path, filters = path_of(job)
    pages = walk(admin_api, path, 2, **filters)
    assert sum(pages, []) == newest_first(Execution.objects.filter(job=job, status="failed"))


def test_a_member_follows_cursors_through_their_organizations_runs_only(api, job, org_mate_job, foreign_job):
    runs(job, 3)
    runs(foreign_job, 4)
    runs(org_mate_job, 3)
    pages = walk(api, EXECUTIONS, 2)
    assert sum(pages, []) == newest_first(Execution.objects.filter(job__in=[job, org_mate_job]))
    # a cursor taken from someone else's run only says where to start: their runs stay hidden
    foreign = Execution.objects.filter(job=foreign_job).order_by("-created_at", "-id").first()
    cursor = pagination.encode_cursor(foreign.created_at, foreign.pk)
    items = api.get(EXECUTIONS, {"cursor": cursor, "size": 100}).json()["items"]
    assert {item["job_id"] for item in items} <= {job.pk, org_mate_job.pk}


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    "not-a-cursor", "%%%", _b64("[]"), _b64('["2026-01-01T00:00:00+00:00"]'), _b64('{"a": 1}'),
    _b64('["yesterday", 5]'), _b64('["2026-01-01T00:00:00", 5]'), _b64('["2026-01-01T00:00:00+00:00", 0]'),
    _b64('["2026-01-01T00:00:00+00:00", "5"]'), _b64('["2026-01-01T00:00:00+00:00", true]'),
    _b64('["2026-01-01T00:00:00+00:00", 9223372036854775808]'), _b64("[" * 5000), "x" * 201,
])
@pytest.mark.parametrize("path", [EXECUTIONS, "job"])
def test_a_cursor_the_list_did_not_give_is_400_naming_it(admin_api, job, cursor, path):
    path = f"/api/v1/jobs/{job.pk}/executions/" if path == "job" else path
    response = admin_api.get(path, {"cursor": cursor})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("cursor: ")


def test_cursor_and_page_together_is_400(admin_api, job):
    runs(job, 3)
    first = admin_api.get(EXECUTIONS, {"size": 1}).json()
    response = admin_api.get(EXECUTIONS, {"cursor": first["next"], "page": 2})
    assert response.status_code == 400
    assert response.json()["detail"] == "cursor: Give cursor or page, not both."


def test_a_deep_cursor_costs_the_queries_of_the_first_page(admin_api, job, user):
    runs(job, 30, triggered_by=user)

    def queries(**params):
        with CaptureQueriesContext(connection) as ctx:
            response = admin_api.get(EXECUTIONS, {"size": 5, **params})
        assert response.status_code == 200
        return len(ctx.captured_queries), response.json()

    first_count, first = queries()
    oldest = Execution.objects.order_by("created_at", "id")[6]
    deep_count, deep = queries(cursor=pagination.encode_cursor(oldest.created_at, oldest.pk))
    assert len(deep["items"]) == 5
    # the page/size answer counts too; a cursor answer does not
    assert deep_count == first_count - 1


# ---------------------------------------------------------------------------
# The page/size contract and its total
# ---------------------------------------------------------------------------
def test_pages_by_number_list_what_the_cursors_list(admin_api, job):
    runs(job, 11)
    by_number = [[item["id"] for item in admin_api.get(EXECUTIONS, {"size": 4, "page": n}).json()["items"]]
                 for n in (1, 2, 3)]
    assert by_number == walk(admin_api, EXECUTIONS, 4)
    page = admin_api.get(EXECUTIONS, {"size": 4, "page": 3}).json()
    assert (page["total"], page["pages"], page["next"]) == (11, 3, None)
    assert admin_api.get(EXECUTIONS, {"size": 4, "page": 4}).json()["items"] == []


def test_the_next_of_a_page_by_number_continues_it(admin_api, job):
    runs(job, 7)
    page = admin_api.get(EXECUTIONS, {"size": 3, "page": 2}).json()
    after = admin_api.get(EXECUTIONS, {"size": 3, "cursor": page["next"]}).json()
    assert [item["id"] for item in after["items"]] == newest_first(Execution.objects.all())[6:]


def test_a_total_above_the_threshold_is_an_estimate(admin_api, job, monkeypatch):
    runs(job, 12)
    monkeypatch.setattr(pagination, "EXACT_TOTAL_UP_TO", 5)
    body = admin_api.get(EXECUTIONS, {"size": 4}).json()
    assert body["total_estimated"] is True
    assert body["total"] >= 6  # never below what the capped count saw
    assert body["pages"] == -(-body["total"] // 4)
    assert len(body["items"]) == 4 and body["next"] is not None
    # a small list stays exact
    small = admin_api.get(EXECUTIONS, {"size": 4, "job_id": job.pk, "status": "failed"}).json()
    assert (small["total"], small["total_estimated"]) == (0, False)


def test_an_estimated_total_is_kept_a_while_and_an_exact_one_never(admin_api, job, monkeypatch):
    runs(job, 12)
    monkeypatch.setattr(pagination, "EXACT_TOTAL_UP_TO", 5)
    first = admin_api.get(EXECUTIONS, {"size": 4}).json()
    # given more runs since, the same list within the time answers the estimate it kept, counting nothing
    runs(job, 30)
    with CaptureQueriesContext(connection) as queries:
        again = admin_api.get(EXECUTIONS, {"size": 4}).json()
    assert (again["total"], again["total_estimated"]) == (first["total"], True)
    assert not any("COUNT(" in query["sql"].upper() for query in queries.captured_queries)
    # another list (another filter) has its own estimate, and a short list is counted each time
    with CaptureQueriesContext(connection) as queries:
        other = admin_api.get(EXECUTIONS, {"size": 4, "status": "success"}).json()
    assert other["total_estimated"] is True
    assert any("COUNT(" in query["sql"].upper() for query in queries.captured_queries)
    small = admin_api.get(EXECUTIONS, {"size": 4, "status": "failed"}).json()
    assert (small["total"], small["total_estimated"]) == (0, False)
    ExecutionFactory(job=job, status="failed")
    small = admin_api.get(EXECUTIONS, {"size": 4, "status": "failed"}).json()
    assert (small["total"], small["total_estimated"]) == (1, False)
    # and once it is no longer kept (its time over), the estimate is made again
    pagination.cache.clear()
    with CaptureQueriesContext(connection) as queries:
        assert admin_api.get(EXECUTIONS, {"size": 4}).json()["total_estimated"] is True
    assert any("COUNT(" in query["sql"].upper() for query in queries.captured_queries)


def test_past_an_estimated_total_the_rows_decide(admin_api, job, monkeypatch):
    runs(job, 8)
    monkeypatch.setattr(pagination, "EXACT_TOTAL_UP_TO", 3)
    monkeypatch.setattr(pagination, "_sampled_estimate", lambda queryset: 0)
    monkeypatch.setattr(pagination, "_planner_estimate", lambda queryset: 0)
    body = admin_api.get(EXECUTIONS, {"size": 3, "page": 3}).json()
    assert (body["total"], body["pages"]) == (4, 2)  # the estimate: at least the capped count
    assert len(body["items"]) == 2  # page 3 of 8 runs, though the estimate says 2 pages


def test_the_sampled_estimate_reads_ids_spread_over_the_table(job, monkeypatch):
    # given 40 runs whose ids alternate between two statuses
    made = [ExecutionFactory(job=job, status="failed" if i % 2 else "success") for i in range(40)]
    assert made[-1].pk - made[0].pk == 39
    monkeypatch.setattr(pagination, "SAMPLE_SIZE", 8)
    # every fifth id from the lowest: alternately even and odd offsets, one of each status in turn
    assert pagination._sampled_estimate(Execution.objects.filter(status="failed")) == 20
    assert pagination._sampled_estimate(Execution.objects.all()) == 40
    assert pagination._sampled_estimate(Execution.objects.filter(status="queued")) == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the planner's estimate is PostgreSQL's")
def test_the_planner_estimate_follows_the_statistics(job):
    runs(job, 30, status="failed")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE scheduling_execution")
    assert 15 <= pagination._planner_estimate(Execution.objects.filter(status="failed")) <= 60


# ---------------------------------------------------------------------------
# The schema
# ---------------------------------------------------------------------------
def test_the_schema_documents_cursor_next_and_the_estimate(admin_api):
    schema = admin_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for path in ("/api/v1/executions/", "/api/v1/jobs/{id}/executions"):
        operation = schema["paths"][path]["get"]
        parameters = {p["name"]: p for p in operation["parameters"]}
        assert "next" in parameters["cursor"]["description"]
        ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        envelope = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
        assert set(envelope["required"]) == {"items", "size", "next"}
        assert envelope["properties"]["next"]["nullable"] is True
        assert "estimate" in envelope["properties"]["total"]["description"]
        assert {"total", "total_estimated", "page", "pages"} <= set(envelope["properties"])


def test_cursor_encoding_round_trips():
    when = timezone.now()
    assert pagination.decode_cursor(pagination.encode_cursor(when, 42)) == (when, 42)
    token = pagination.encode_cursor(when, 42)
    assert json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))[1] == 42
