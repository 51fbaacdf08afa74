"""The vision flow (fetch → download → batch → analyse → report → upload)
against a real local HTTP server standing in for the external API
(vision_pipeline.demo). Loopback is not switched on: each test allows
exactly the server's host:port."""
import json
import logging
import os
from pathlib import Path

import pytest

from jobsite import http
from vision_pipeline import samples, services
from vision_pipeline.demo import DEMO_ORGANIZATION_ID, DemoExternalAPI
from vision_pipeline.models import Batch
from vision_pipeline.services import flow

pytestmark = pytest.mark.django_db

KEY = "sEcReT-jwt-0123456789"


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(http, "BACKOFF_SECONDS", 0.01)


@pytest.fixture(autouse=True)
def no_ocr(settings):
    """The flow is under test here, not the text the inspector reads
    (tests/vision/test_ocr.py), which costs more than the rest of an analysis."""
    settings.VISION_OCR = "off"


@pytest.fixture
def api(settings, tmp_path):
    server = DemoExternalAPI(key=KEY).start()
    settings.OUTBOUND_HTTP_ALLOW_LOOPBACK = False
    settings.OUTBOUND_HTTP_ALLOW_PRIVATE = False
    settings.OUTBOUND_HTTP_ALLOW_HOSTS = [f"127.0.0.1:{server.port}"]
    settings.OUTBOUND_HTTP_RETRIES = 1
    settings.JOBS_TEMP_DIR = str(tmp_path / "tmp")
    settings.VISION_STORAGE_DIR = str(tmp_path / "vision")
    yield server
    server.stop()


def jpeg(kind="clean", size=(640, 480), seed=0) -> bytes:
    return samples.encode(samples.variant(kind, *size, seed=seed))


def config(api, **overrides) -> services.ProcessorConfig:
    values = dict(external_api_get_url=api.get_url, external_api_post_url=api.post_url, external_api_key=KEY,
                  organization_id=DEMO_ORGANIZATION_ID)
    values.update(overrides)
    return services.ProcessorConfig(**values)


def run(api, **overrides) -> services.ProcessSummary:
    return services.process_analyses(config=config(api, **overrides))


def test_two_analyses_make_two_uploads_with_the_right_fields_and_header(api, settings):
    # given two unprocessed analyses, one with a descriptions file
    first = api.add_analysis(images=[("image1.jpg", jpeg("rust")), ("image2.jpg", jpeg("clean"))],
                             descriptions={"image1.jpg": "Port side hull <b>near</b> waterline"})
    second = api.add_analysis(images=[("deck.jpg", jpeg("cracks"))])
    # when the flow runs
    summary = run(api)
    # then both are uploaded, each as a multipart report with the Bearer key
    assert summary.output == "Processed 2 analyses: 2 succeeded, 0 failed (3 images)"
    assert summary.ok and len(summary.batch_ids) == 2
    assert [u["fields"]["vision_analysis_id"] for u in api.uploads] == [first, second]
    for upload, batch_id in zip(api.uploads, summary.batch_ids):
        assert upload["authorization"] == f"Bearer {KEY}"
        assert upload["fields"]["organization_id"] == DEMO_ORGANIZATION_ID
        report = upload["files"]["file"]
        assert report["filename"] == f"report_{batch_id}.html"
        assert report["content_type"] == "text/html"
    html = api.uploads[0]["files"]["file"]["body"].decode()
    assert "Port side hull &lt;b&gt;near&lt;/b&gt; waterline" in html and "<b>near" not in html
    assert "possible rust" in html and "data:image/jpeg;base64," in html
    # the pages were asked for as the seed says, with the key
    listing = [r for r in api.requests if r["path"].endswith("/vision_analysis")]
    assert listing[0]["query"] == {"is_processed": "false", "page": "1", "page_size": "50"}
    assert listing[0]["authorization"] == f"Bearer {KEY}"
    # batches are recorded with their findings, and the run's temp dir is gone
    batch = Batch.objects.get(pk=summary.batch_ids[0])
    assert (batch.status, batch.total_images, batch.vision_analysis_id) == ("completed", 2, first)
    assert "possible_rust" in batch.images.get(filename="image1.jpg").flags
    assert "crack" in " ".join(Batch.objects.get(pk=summary.batch_ids[1]).images.get().findings)
    assert os.listdir(settings.JOBS_TEMP_DIR) == []


def test_the_key_is_sent_to_the_api_origin_only_never_to_a_storage_host(api, settings):
    storage = DemoExternalAPI(key="unused").start()  # another origin, like a blob store
    try:
        settings.OUTBOUND_HTTP_ALLOW_HOSTS += [f"127.0.0.1:{storage.port}"]
        url = storage.add_file("a.jpg", jpeg(), "image/jpeg")
        api.add_analysis(images=[("a.jpg", jpeg()), ("b.jpg", jpeg())], document_urls={"a.jpg": url})
        summary = run(api)
    finally:
        storage.stop()
    assert summary.ok
    assert [r["authorization"] for r in storage.requests] == [None]
    own = [r for r in api.requests if r["path"].startswith("/files/")]
    assert [r["authorization"] for r in own] == [f"Bearer {KEY}"]


def test_a_500_from_the_external_api_fails_the_run_with_the_error_in_output(api):
    api.add_analysis(images=[("a.jpg", jpeg())])
    api.get_status = 500
    summary = run(api)
    assert not summary.ok
    assert summary.output.startswith("Error: External API returned 500")
    assert api.uploads == []


def test_one_failing_analysis_is_recorded_and_the_next_one_still_runs(api):
    # a 404 image, a descriptions file that is not JSON, an upload answered 500, and a good one
    missing = api.add_analysis(images=[("gone.jpg", jpeg())], document_urls={"gone.jpg": api.url("/files/nope.jpg")})
    bad_json = api.add_analysis(images=[("b.jpg", jpeg())], descriptions=b"{not json")
    refused = api.add_analysis(images=[("c.jpg", jpeg())])
    api.upload_status[refused] = 500
    good = api.add_analysis(images=[("d.jpg", jpeg())])
    summary = run(api)
    by_id = {r["vision_analysis_id"]: r for r in summary.results}
    assert by_id[missing]["status"] == "failed" and "gone.jpg: download returned 404" in by_id[missing]["error"]
    assert by_id[bad_json]["status"] == "failed" and "not valid JSON" in by_id[bad_json]["error"]
    assert by_id[refused]["status"] == "failed" and "Report upload returned 500" in by_id[refused]["error"]
    assert by_id[good]["status"] == "success"
    assert summary.output == "Processed 4 analyses: 1 succeeded, 3 failed (4 images)"
    assert [a["vision_analysis_id"] for a in api.unprocessed] == [missing, bad_json, refused]


def test_every_page_is_fetched(api):
    ids = [api.add_analysis(images=[(f"p{i}.jpg", jpeg(size=(64, 48)))]) for i in range(5)]
    summary = run(api, page_size=2)
    pages = [r["query"]["page"] for r in api.requests if r["path"].endswith("/vision_analysis")]
    # the server drops processed analyses from its list as they are uploaded, but all were fetched first
    assert pages == ["1", "2", "3"]
    assert sorted(r["vision_analysis_id"] for r in summary.results) == sorted(ids)
    assert summary.succeeded == 5


def test_a_server_that_ignores_the_page_parameter_does_not_loop_forever(api):
    for i in range(3):
        api.add_analysis(images=[(f"p{i}.jpg", jpeg(size=(64, 48)))])
    api.ignore_paging = True
    summary = run(api, page_size=2)
    assert len(summary.results) == 2  # page 2 repeated page 1: nothing new, stop
    assert summary.pages == 2


@pytest.mark.parametrize("body, problem", [
    ([], "the body is not a JSON object"),
    ({"code": 500, "status": "success", "data": {"vision_analysis": []}}, "code is 500, not 200"),
    ({"code": 200, "status": "error", "data": {"vision_analysis": []}}, "status is 'error', not 'success'"),
    ({"code": 200, "status": "success", "data": None}, "data is not an object"),
    ({"code": 200, "status": "success", "data": {"vision_analysis": {}}}, "data.vision_analysis is not a list"),
])
def test_malformed_envelopes_fail_the_run_naming_the_problem(api, body, problem):
    api.envelope = lambda page, size: body
    summary = run(api)
    assert summary.output == f"Error: External API returned a malformed envelope: {problem}"


def test_a_body_that_is_not_json_fails_the_run(api):
    api.envelope = None
    api.files["x"] = (b"", "text/plain")
    summary = services.process_analyses(config=config(api, external_api_get_url=api.url("/files/x")))
    assert summary.output.startswith("Error: External API request failed") and "not valid JSON" in summary.output


def test_invalid_items_are_reported_and_the_valid_ones_processed(api):
    good = api.add_analysis(images=[("a.jpg", jpeg())])
    api.analyses.append({"vision_analysis_id": "BROKEN-1", "is_processed": False, "documents": "nope"})
    api.analyses.append({"vision_analysis_id": "BROKEN-2", "is_processed": False, "organization_id":
                         DEMO_ORGANIZATION_ID, "documents": [{"document_path": "ftp://x/y.jpg",
                                                              "document_type": "image", "is_input": True}]})
    api.add_analysis(images=[("other.jpg", jpeg())], organization_id="another-org")
    summary = run(api)
    by_id = {r["vision_analysis_id"]: r for r in summary.results}
    assert by_id[good]["status"] == "success"
    assert by_id["BROKEN-1"]["error"] == "invalid item: documents must be a list"
    assert by_id["BROKEN-2"]["error"] == "invalid item: documents[0].document_path is not an http(s) URL"
    assert len(summary.results) == 3  # the other organization's analysis is left alone


def test_organization_ids_match_whatever_their_case(api):
    api.add_analysis(images=[("a.jpg", jpeg())], organization_id=DEMO_ORGANIZATION_ID.lower())
    assert run(api).succeeded == 1


def test_a_download_that_is_not_an_image_fails_its_analysis(api):
    analysis = api.add_analysis(images=[("page.jpg", b"<html><body>login</body></html>")])
    summary = run(api)
    assert summary.results[0]["status"] == "failed"
    assert "page.jpg: not an image" in summary.results[0]["error"]
    assert api.uploads == [] and [a["vision_analysis_id"] for a in api.unprocessed] == [analysis]


def test_an_oversized_image_is_cut_off_while_streaming(api, settings):
    settings.VISION_MAX_IMAGE_BYTES = 50_000
    api.add_analysis(images=[("big.jpg", os.urandom(200_000))])
    summary = run(api)
    assert summary.results[0]["status"] == "failed"
    assert "over the 50000-byte limit" in summary.results[0]["error"]


def test_too_many_pixels_and_a_decompression_bomb_are_refused_before_decoding(api, settings):
    settings.VISION_MAX_IMAGE_PIXELS = 100_000
    api.add_analysis(images=[("large.jpg", jpeg(size=(640, 480)))])
    api.add_analysis(images=[("bomb.png", samples.decompression_bomb())])
    summary = run(api)
    assert "640 x 480 pixels is over the limit of 100,000 pixels" in summary.results[0]["error"]
    assert "bomb.png: refused, it declares more pixels than allowed (decompression bomb)" \
        in summary.results[1]["error"]


def test_private_and_link_local_document_urls_are_refused(api):
    api.add_analysis(images=[("meta.jpg", jpeg())],
                     document_urls={"meta.jpg": "http://169.254.169.254/latest/meta-data/"})
    api.add_analysis(images=[("lan.jpg", jpeg())], document_urls={"lan.jpg": "http://10.1.2.3/x.jpg"})
    summary = run(api)
    assert "link-local address" in summary.results[0]["error"]
    assert "10.1.2.3 is a private address" in summary.results[1]["error"]


def test_a_loopback_api_not_on_the_allow_list_is_refused(api, settings):
    settings.OUTBOUND_HTTP_ALLOW_HOSTS = []
    summary = run(api)
    assert "loopback address" in summary.output and api.requests == []


def test_the_key_never_appears_in_logs_or_results(api, caplog):
    caplog.set_level(logging.DEBUG)
    api.add_analysis(images=[("a.jpg", jpeg())], document_urls={"a.jpg": api.url(f"/files/missing?token={KEY}")})
    api.add_analysis(images=[("b.jpg", jpeg())])
    api.get_status = None
    summary = run(api)
    api.get_status = 503
    failed = run(api)
    text = caplog.text + json.dumps(summary.as_result()) + json.dumps(failed.as_result()) + failed.output
    assert KEY not in text
    assert "Authorization" not in caplog.text or "***" in caplog.text


def test_a_slow_analysis_times_out_and_the_next_one_runs(api, monkeypatch):
    first = api.add_analysis(images=[("a.jpg", jpeg()), ("b.jpg", jpeg())])
    second = api.add_analysis(images=[("c.jpg", jpeg())])
    original = services.batch_analyze
    calls = []

    def slow_then_normal(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            kwargs["deadline"] = 0  # already past: the analysis is over its time
        return original(**kwargs)

    monkeypatch.setattr(flow, "batch_analyze", slow_then_normal)
    summary = run(api, analysis_timeout_seconds=300)  # generous: only the first is over it
    by_id = {r["vision_analysis_id"]: r for r in summary.results}
    assert by_id[first]["status"] == "timeout"
    assert by_id[first]["error"] == "Analysis exceeded its timeout of 300 seconds"
    assert by_id[second]["status"] == "success"
    assert Batch.objects.get(pk=by_id[first]["batch_id"]).status == "failed"


def test_dry_run_fetches_and_validates_without_downloading_or_uploading(api):
    api.add_analysis(images=[("a.jpg", jpeg())], descriptions={"a.jpg": "x"})
    summary = services.process_analyses(config=config(api), dry_run=True)
    assert summary.results[0]["dry_run"] and summary.results[0]["descriptions"]
    assert [r["path"] for r in api.requests] == ["/api/v1/documents/vision_analysis"]
    assert api.uploads == [] and not Batch.objects.exists()


def test_a_run_whose_only_failures_are_timeouts_is_recorded_as_timeout(api, monkeypatch, superuser):
    # given a /cron-jobs job whose one analysis runs out of its time
    from scheduling import services as core_services

    api.add_analysis(images=[("a.jpg", jpeg())])
    job = services.cron_job_create(
        actor=superuser, name="timeouts", schedule="0 * * * *", external_api_get_url=api.get_url,
        external_api_post_url=api.post_url, external_api_key=KEY, organization_id=DEMO_ORGANIZATION_ID,
        analysis_timeout_seconds=5,
    )
    original = services.batch_analyze
    monkeypatch.setattr(flow, "batch_analyze", lambda **kw: original(**{**kw, "deadline": 0}))
    execution = core_services.job_execute(job=job, force=True)
    # when the worker's code runs it
    core_services.execution_run(execution_id=execution.pk, task_id=execution.celery_task_id, worker="pytest pid 0")
    execution.refresh_from_db()
    # then the execution says timeout, not a plain failure
    assert execution.status == "timeout"
    assert execution.result["analyses"][0]["status"] == "timeout"
