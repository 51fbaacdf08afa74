"""Seed 001's backend: /available_models and the batch API under
/api/v1/vision/ (runs of the vision.batch manual job), and the
openai-compatible analyzer against a local fake chat-completions server."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from scheduling.models import Execution
from tests.worker import wait_for
from vision_pipeline import samples, services
from vision_pipeline.models import Batch

BATCHES = "/api/v1/vision/batches"


def image(name="a.jpg", kind="rust", size=(640, 480), seed=0):
    return SimpleUploadedFile(name, samples.encode(samples.variant(kind, *size, seed=seed)), "image/jpeg")


@pytest.fixture(autouse=True)
def storage(settings, tmp_path):
    settings.VISION_STORAGE_DIR = str(tmp_path / "vision")
    settings.JOBS_TEMP_DIR = str(tmp_path / "tmp")


# ---------------------------------------------------------------------------
# Input checks (no worker needed)
# ---------------------------------------------------------------------------
@pytest.mark.django_db
def test_available_models(api):
    data = api.get("/available_models").json()
    assert data["default"] == "inspector"
    assert {m["id"] for m in data["models"]} == {"inspector", "ocr", "openai-compatible"}
    ocr = next(m for m in data["models"] if m["id"] == "ocr")
    assert ocr["available"] or "pip install 'jobsite[ocr]'" in ocr["reason"]


@pytest.mark.django_db
@pytest.mark.parametrize("payload, detail", [
    ({}, "images:"),
    ({"images": [SimpleUploadedFile("x.jpg", b"<html>", "image/jpeg")]}, "x.jpg: not an image"),
    ({"images": [image()], "descriptions": "{bad"}, "descriptions: not valid JSON"),
    ({"images": [image()], "descriptions": "[1]"}, "descriptions: must be a JSON object"),
    ({"images": [image()], "model": "gpt-99"}, "Unknown model 'gpt-99'"),
    ({"images": [image()], "model": "openai-compatible"}, "Model 'openai-compatible' is not available"),
])
def test_bad_uploads_are_a_400_naming_the_problem(api, payload, detail, settings):
    settings.VISION_OPENAI_BASE_URL = ""
    response = api.post(BATCHES, payload, format="multipart")
    assert response.status_code == 400, response.content
    assert detail in response.json()["detail"]
    assert not Batch.objects.exists()


@pytest.mark.django_db
def test_too_many_images(api, settings):
    settings.VISION_MAX_IMAGES_PER_BATCH = 1
    response = api.post(BATCHES, {"images": [image("a.jpg"), image("b.jpg")]}, format="multipart")
    assert response.status_code == 400 and "At most 1 images" in response.json()["detail"]


@pytest.mark.django_db
def test_more_files_than_django_accepts_is_a_400_not_a_500(api, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    response = api.post(BATCHES, {"images": [image(f"{n}.jpg", size=(32, 24)) for n in range(3)]},
                        format="multipart")
    assert response.status_code == 400 and "too many files" in response.json()["detail"].lower()


@pytest.mark.django_db
def test_someone_elses_batch_is_404(api, client_for, make_user, other_org):
    batch = services.batch_create(source=Batch.Source.API, files=[], owner=make_user("carol", organization=other_org))
    for path in (f"{BATCHES}/{batch.pk}", f"{BATCHES}/{batch.pk}/report", f"{BATCHES}/nope"):
        response = api.get(path)
        assert response.status_code == 404 and "not found" in response.json()["detail"]
    assert api.post(f"{BATCHES}/{batch.pk}/cancel").status_code == 404


# ---------------------------------------------------------------------------
# Through the real worker
# ---------------------------------------------------------------------------
@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_batch_is_analysed_by_the_worker_and_its_report_served(celery_worker_process, api, settings):
    settings.VISION_STORAGE_DIR = str(settings.VAR_DIR / "vision")  # the worker's (default) directory
    response = api.post(BATCHES, {
        "images": [image("hull.jpg", "rust"), image("deck.jpg", "blurred")], "user_query": "Find <rust>",
        "descriptions": json.dumps({"hull.jpg": "Port side hull"}), "organization_id": "ORG-1",
    }, format="multipart")
    assert response.status_code == 202, response.content
    data = response.json()
    assert (data["status"], data["total_images"], data["model"]) == ("pending", 2, "inspector")
    assert data["task_id"]
    batch_id = data["batch_id"]
    status = wait_for(lambda: (api.get(f"{BATCHES}/{batch_id}").json() or None)
                      if api.get(f"{BATCHES}/{batch_id}").json()["status"] not in ("pending", "processing") else None,
                      timeout=60, message="the batch to finish")
    assert status["status"] == "completed", status
    assert (status["processed_images"], status["flagged_images"], status["progress"]) == (2, 2, 100.0)
    assert status["summary"]["flags"] == {"blurry": 1, "possible_rust": 1}
    report = api.get(status["report_url"])
    assert report.status_code == 200 and report["Content-Type"].startswith("text/html")
    html = report.content.decode()
    assert "Find &lt;rust&gt;" in html and "Port side hull" in html
    assert "default-src 'none'" in report["Content-Security-Policy"]
    assert api.post(f"{BATCHES}/{batch_id}/cancel").status_code == 409
    listed = api.get(BATCHES).json()["batches"]
    assert [b["batch_id"] for b in listed] == [batch_id]


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_cancel_revokes_the_batchs_run(celery_worker_process, api, settings):
    settings.VISION_STORAGE_DIR = str(settings.VAR_DIR / "vision")
    images = [image(f"i{n}.jpg", "clean", (1600, 1200), seed=n) for n in range(90)]
    batch_id = api.post(BATCHES, {"images": images}, format="multipart").json()["batch_id"]
    wait_for(lambda: api.get(f"{BATCHES}/{batch_id}").json()["status"] == "processing", timeout=30,
             message="processing")
    response = api.post(f"{BATCHES}/{batch_id}/cancel")
    assert response.status_code == 200 and response.json()["batch"]["status"] == "cancelled"
    batch = Batch.objects.select_related("execution").get(pk=batch_id)
    assert batch.execution.status == Execution.Status.CANCELLED
    assert batch.processed_images < 90
    response = api.get(f"{BATCHES}/{batch_id}/report")
    assert response.status_code == 409 and "cancelled" in response.json()["detail"]


# ---------------------------------------------------------------------------
# openai-compatible, against a local fake endpoint
# ---------------------------------------------------------------------------
class _FakeChat(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if self.server.fail:
            self.send_response(400)
            self.end_headers()
            return
        answer = json.dumps({"model": body["model"], "choices": [{"message": {
            "role": "assistant", "content": "Image 1 shows <b>corrosion</b> near the waterline."}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_model(settings):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeChat)
    server.seen, server.fail = [], False
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.OUTBOUND_HTTP_ALLOW_LOOPBACK = False  # allowed because the operator configured it
    settings.OUTBOUND_HTTP_ALLOW_HOSTS = []
    settings.VISION_OPENAI_BASE_URL = f"http://127.0.0.1:{server.server_address[1]}/v1"
    settings.VISION_OPENAI_MODEL = "llava-test"
    settings.VISION_OPENAI_API_KEY = "model-key-123"
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.django_db
def test_the_openai_compatible_analyzer_sends_images_query_and_descriptions(fake_model, tmp_path):
    paths = []
    for n, kind in enumerate(("rust", "clean")):
        path = tmp_path / f"{kind}.jpg"
        path.write_bytes(samples.encode(samples.variant(kind, 800, 600)))
        paths.append((f"{kind}.jpg", path))
    batch = services.batch_create(source=Batch.Source.API, files=paths, user_query="Any corrosion?",
                                  descriptions={"rust.jpg": "Hull"}, model="openai-compatible")
    batch = services.batch_analyze(batch=batch, files=paths)
    assert batch.status == "completed", batch.error
    request = fake_model.seen[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer model-key-123"
    content = request["body"]["messages"][1]["content"]
    assert "Any corrosion?" in content[0]["text"] and "rust.jpg — Hull" in content[0]["text"]
    assert [part["image_url"]["url"][:23] for part in content[1:]] == ["data:image/jpeg;base64,"] * 2
    assert batch.summary["answer"]["model"] == "llava-test"
    html = services.batch_report_path(batch).read_text()
    assert "&lt;b&gt;corrosion&lt;/b&gt;" in html and "possible rust" in html


@pytest.mark.django_db
def test_a_failing_model_endpoint_fails_the_batch_clearly(fake_model, tmp_path):
    fake_model.fail = True
    path = tmp_path / "a.jpg"
    path.write_bytes(samples.encode(samples.variant("clean", 320, 240)))
    batch = services.batch_create(source=Batch.Source.API, files=[("a.jpg", path)], model="openai-compatible")
    batch = services.batch_analyze(batch=batch, files=[("a.jpg", path)])
    assert batch.status == "failed" and "The model endpoint failed" in batch.error and "HTTP 400" in batch.error
    assert "model-key-123" not in batch.error
