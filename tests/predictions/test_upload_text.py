"""Text no database can hold, in what an upload carries besides its rows: a
file name with an unpaired surrogate (Python's spelling of bytes that are not
UTF-8 in a Linux file name, given to the CLI) is refused naming the file name,
and nothing is kept. Through HTTP, the multipart parser drops NULs from file
names and reads bytes that are not UTF-8 as U+FFFD, so an upload still lands."""
import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from predictions.models import BulkUploadJob
from tests.predictions_files import annual_row, csv_bytes

pytestmark = pytest.mark.django_db

ANNUAL = "/api/v1/predictions/annual/bulk-upload-async"


@pytest.fixture(autouse=True)
def _storage(settings, tmp_path):
    settings.PREDICTIONS_STORAGE_DIR = tmp_path / "storage"


def stored(settings):
    folder = settings.PREDICTIONS_STORAGE_DIR / "uploads"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_a_cli_file_name_that_is_not_utf8_is_refused_naming_it(tmp_path, settings):
    # given a file whose name holds the byte 0xFF (os.fsdecode spells it as the surrogate \udcff)
    path = tmp_path / os.fsdecode(b"report-\xff.csv")
    path.write_bytes(csv_bytes([annual_row(0)]))
    # when the CLI uploads it
    with pytest.raises(CommandError) as refused:
        call_command("predictions", "upload", str(path), "--type", "annual", "--no-follow")
    # then it is refused, naming the file name (escaped, never the raw text), and nothing is kept
    message = str(refused.value)
    assert message.startswith("file (file name): an unpaired surrogate"), message
    message.encode("utf-8")  # the message itself is valid text
    assert not BulkUploadJob.objects.exists() and stored(settings) == []


@pytest.mark.parametrize("name, kept", [("nul\x00.csv", "nul.csv"), ("caf\udce9.csv", None)])
def test_http_file_names_are_stored_as_text_or_refused_never_a_500(api, settings, name, kept):
    boundary = "edge"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"".encode()
            + name.encode("utf-8", "surrogateescape") + b"\"\r\nContent-Type: text/csv\r\n\r\n"
            + csv_bytes([annual_row(0)]) + f"\r\n--{boundary}--\r\n".encode())
    response = api.generic("POST", ANNUAL, body, content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code in (202, 400), response.content[:300]
    if kept is not None:
        assert response.status_code == 202
        assert BulkUploadJob.objects.get().original_filename == kept
    else:
        assert response.status_code == 400 and not BulkUploadJob.objects.exists() and stored(settings) == []
