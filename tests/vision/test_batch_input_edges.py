"""The batch upload's edges (POST /api/v1/vision/batches): descriptions nested
deeper than a flat object, text no database can hold (NUL, unpaired
surrogates) in any field or file name, and storage written only after the
rows it belongs to, so that a refused or failed upload leaves neither a row
nor a file. Run on SQLite and on PostgreSQL (DATABASE_URL)."""
import os
import shutil

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from jobsite.exceptions import ApplicationError
from scheduling import services as core
from vision_pipeline import external, samples, services
from vision_pipeline.models import Batch, BatchImage

pytestmark = pytest.mark.django_db

BATCHES = "/api/v1/vision/batches"
BOUNDARY = "edge-boundary"


@pytest.fixture(autouse=True)
def storage(settings, tmp_path):
    settings.VISION_STORAGE_DIR = str(tmp_path / "vision")
    settings.JOBS_TEMP_DIR = str(tmp_path / "tmp")
    return tmp_path


def jpeg(seed=0) -> bytes:
    return samples.encode(samples.variant("rust", 64, 48, seed=seed))


def multipart(fields: list[tuple[str, bytes]], files: list[tuple[bytes, bytes]]) -> bytes:
    """A multipart body written byte for byte (the test client would refuse what an attacker sends)."""
    parts = [b"--" + BOUNDARY.encode() + b'\r\nContent-Disposition: form-data; name="' + name.encode()
             + b'"\r\n\r\n' + value + b"\r\n" for name, value in fields]
    parts += [b"--" + BOUNDARY.encode() + b'\r\nContent-Disposition: form-data; name="images"; filename="'
              + filename + b'"\r\nContent-Type: image/jpeg\r\n\r\n' + data + b"\r\n" for filename, data in files]
    return b"".join(parts) + b"--" + BOUNDARY.encode() + b"--\r\n"


def post(api, fields: list[tuple[str, bytes]], files=None):
    files = files if files is not None else [(b"a.jpg", jpeg()), (b"b.jpg", jpeg(1))]
    return api.generic("POST", BATCHES, multipart(fields, files),
                       content_type=f"multipart/form-data; boundary={BOUNDARY}")


def nothing_kept(settings) -> bool:
    """No batch row, no image row, no stored file, no staged file left behind."""
    stored = [files for _root, _dirs, files in os.walk(settings.VISION_STORAGE_DIR) if files]
    staged = [files for _root, _dirs, files in os.walk(settings.JOBS_TEMP_DIR) if files]
    return not Batch.objects.exists() and not BatchImage.objects.exists() and not stored and not staged


@pytest.mark.parametrize("descriptions, detail", [
    # the reported case: 100,000 levels (a RecursionError, were it decoded)
    (b"[" * 100_000 + b"]" * 100_000, "descriptions: must be a JSON object of file name"),
    (b'{"a.jpg": {"nested": "object"}}', "descriptions: must be a JSON object of file name"),
    (b'{"a.jpg": "\\ud800 half a pair"}', "descriptions: a.jpg: an unpaired surrogate"),
    # a refused key is quoted escaped: the answer itself must be valid text
    (b'{"\\udfff.jpg": "key"}', "descriptions: \\udfff.jpg: an unpaired surrogate (\\ud800-\\udfff) is not valid"),
    (b'{"a.jpg": "NUL \\u0000 inside"}', "descriptions: a.jpg: NUL characters (\\u0000) are not allowed"),
])
def test_descriptions_that_cannot_be_held_are_a_400_naming_descriptions(api, settings, descriptions, detail):
    response = post(api, [("user_query", b"Any rust?"), ("descriptions", descriptions)])
    assert response.status_code == 400, response.content[:300]
    assert detail in response.json()["detail"]
    assert response.json()["detail"].startswith("descriptions: ")
    assert nothing_kept(settings)


@pytest.mark.parametrize("field", ["user_query", "organization_id", "model", "descriptions"])
def test_a_nul_in_any_form_field_is_a_400_naming_it(api, settings, field):
    response = post(api, [(field, b"before\x00after")])
    assert response.status_code == 400, response.content[:300]
    assert response.json()["detail"].startswith(f"{field}: ")
    assert nothing_kept(settings)


def test_undecodable_bytes_in_a_field_are_stored_as_replacement_characters_not_a_500(api):
    # An encoded lone surrogate is not UTF-8: the form parser reads it as U+FFFD.
    response = post(api, [("user_query", b"rust \xed\xa0\x80?")])
    assert response.status_code == 202, response.content[:300]
    assert Batch.objects.get().user_query == "rust \ufffd\ufffd\ufffd?"


@pytest.mark.parametrize("name, problem", [
    ("half\ud800pair.jpg", "images[1] (file name): an unpaired surrogate"),
    ("nul\x00.jpg", "images[1] (file name): NUL characters"),
])
def test_a_file_name_that_cannot_be_held_is_a_400_and_nothing_is_copied(settings, storage, name, problem):
    # (the multipart parser drops NULs from file names; a cron run's names come from the external API)
    files = []
    for position, label in enumerate(["ok.jpg", name]):
        path = storage / f"staged{position}"
        path.write_bytes(jpeg(position))
        files.append((label, path))
    with pytest.raises(ApplicationError) as refused:
        services.batch_create(source=Batch.Source.API, files=files, user_query="q")
    assert refused.value.status == 400 and str(refused.value.message).startswith(problem)
    assert nothing_kept(settings)


@pytest.mark.parametrize("field", ["user_query", "vision_analysis_id", "run_code", "organization_name"])
def test_the_service_refuses_unstorable_text_in_every_field(settings, field):
    with pytest.raises(ApplicationError) as refused:
        services.batch_create(source=Batch.Source.CRON, files=[], **{field: "x\ud83dy"})
    assert refused.value.status == 400 and str(refused.value.message).startswith(f"{field}: an unpaired surrogate")


def test_images_are_written_after_their_rows_and_removed_when_the_copy_fails(settings, storage, monkeypatch):
    # given three images, and a disk that fails on the third copy
    files = []
    for position in range(3):
        path = storage / f"staged{position}"
        path.write_bytes(jpeg(position))
        files.append((f"img{position}.jpg", path))
    copies = []
    real_copy = shutil.copyfile

    def copy_then_fail(source, target):
        assert BatchImage.objects.filter(stored_name=os.path.basename(target)).exists(), "a file before its row"
        copies.append(target)
        if len(copies) == 3:
            raise OSError(28, "No space left on device")
        return real_copy(source, target)

    monkeypatch.setattr(shutil, "copyfile", copy_then_fail)
    # when the batch is recorded, then it fails and leaves neither rows nor the two files already copied
    with pytest.raises(OSError):
        services.batch_create(source=Batch.Source.API, files=files)
    assert len(copies) == 3
    assert nothing_kept(settings)


def test_an_upload_refused_after_its_rows_are_written_leaves_no_files(api, settings):
    # given the vision.batch job paused by an operator (the run request is refused after batch_create)
    job = services.batch_job()
    core.job_pause(job=job, actor=None, actor_label="operator")
    # when images are uploaded
    response = post(api, [("user_query", b"Any rust?")])
    # then the upload is refused and neither the batch nor its stored images remain
    assert response.status_code in (409, 503), response.content[:300]
    assert "paused" in response.json()["detail"]
    assert nothing_kept(settings)


def test_external_items_with_unstorable_text_are_invalid_items_naming_the_field():
    item = {"vision_analysis_id": "va-1", "user_query": "NUL \x00 here",
            "documents": [{"document_path": "https://files.example.com/a.jpg", "document_type": "image"}]}
    with pytest.raises(ValueError, match=r"^user_query: NUL characters"):
        external.parse_analysis(item)
    item.update(user_query="fine", vision_analysis_id="va-\udc00")
    with pytest.raises(ValueError, match=r"^vision_analysis_id: an unpaired surrogate"):
        external.parse_analysis(item)
