"""A vision batch in the admin: thumbnails served with the page's permission
and tenancy checks, flags as chips, the summary as fields, the report first."""
from __future__ import annotations

import io
import re

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from PIL import Image

from vision_pipeline import samples, services
from vision_pipeline.models import Batch

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def storage(settings, tmp_path):
    settings.VISION_STORAGE_DIR = str(tmp_path / "vision")
    settings.JOBS_TEMP_DIR = str(tmp_path / "tmp")
    settings.VISION_OCR = "off"  # the text read is not under test here (tests/vision/test_ocr.py)


def image_file(tmp_path, name, kind, seed=0):
    path = tmp_path / name
    path.write_bytes(samples.encode(samples.variant(kind, 800, 600, seed=seed)))
    return (name, path)


@pytest.fixture
def batch(tmp_path, user, org):
    files = [image_file(tmp_path, "hull.jpg", "rust"), image_file(tmp_path, "deck.jpg", "blurred", seed=1)]
    created = services.batch_create(source=Batch.Source.API, files=files, owner=user, organization=org,
                                    user_query="Any rust?", descriptions={"hull.jpg": "Port side hull"})
    return services.batch_analyze(batch=created)


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def thumb_url(batch, position=0) -> str:
    return f"/admin/vision_pipeline/batch/{batch.pk}/images/{position}/thumbnail/"


def test_the_batch_page_shows_chips_fields_thumbnails_and_the_report_first(batch, superuser):
    assert batch.status == "completed" and batch.summary["flags"]
    page = signed_in(superuser).get(f"/admin/vision_pipeline/batch/{batch.pk}/change/").content.decode()
    # flags as chips with their counts, never as a JSON list
    assert re.search(r'class="vb-chip vb-chip-possible_rust">Possible rust ×1<', page)
    assert re.search(r'class="vb-chip vb-chip-blurry">Blurry', page)
    assert '["possible_rust"]' not in page and "[&quot;possible_rust&quot;]" not in page
    assert '{"flags"' not in page and "{&quot;flags&quot;" not in page  # the summary is fields, not JSON
    # the report link is at the top, before the fields
    report = f'href="/api/v1/vision/batches/{batch.pk}/report"'
    assert report in page and page.index(report) < page.index("<fieldset")
    # one thumbnail per image, with its description and own flags
    assert page.count('src="' + thumb_url(batch, 0)[:-len("0/thumbnail/")]) == 2
    assert "Port side hull" in page and "1. hull.jpg" in page
    # its run is linked
    assert f"/admin/scheduling/execution/" in page or batch.execution_id is None


def test_the_batch_list_shows_progress_with_failed_images(batch, superuser):
    Batch.objects.filter(pk=batch.pk).update(failed_images=1)
    page = signed_in(superuser).get("/admin/vision_pipeline/batch/").content.decode()
    assert 'class="ops-progress"' in page and "2/2" in page
    assert re.search(r'class="ops-progress-failed" style="width:50.00%"', page)


def test_a_thumbnail_is_a_small_cached_jpeg_of_the_stored_image(batch, superuser):
    client = signed_in(superuser)
    response = client.get(thumb_url(batch))
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert "max-age=" in response["Cache-Control"] and "private" in response["Cache-Control"]
    picture = Image.open(io.BytesIO(response.content))
    assert picture.format == "JPEG" and max(picture.size) == 320  # downscaled from 800 x 600
    again = client.get(thumb_url(batch), HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304 and not again.content


def test_a_thumbnail_needs_sign_in_permission_and_tenancy(batch, make_user, org, other_org):
    anonymous = Client().get(thumb_url(batch))
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    outsider = make_user("outsider", organization=other_org)
    outsider.is_staff = True
    outsider.save()
    client = signed_in(outsider)
    assert client.get(thumb_url(batch)).status_code in (403, 404)  # no permission on batches
    outsider.user_permissions.add(Permission.objects.get(codename="view_batch"))
    assert client.get(thumb_url(batch)).status_code == 404  # another organization's batch
    insider = make_user("insider", organization=org)
    insider.is_staff = True
    insider.save()
    insider.user_permissions.add(Permission.objects.get(codename="view_batch"))
    assert signed_in(insider).get(thumb_url(batch)).status_code == 200


def test_thumbnails_that_do_not_exist_are_404(batch, superuser, tmp_path):
    client = signed_in(superuser)
    assert client.get(thumb_url(batch, 7)).status_code == 404
    assert client.get("/admin/vision_pipeline/batch/00000000-0000-0000-0000-000000000000/images/0/thumbnail/"
                      ).status_code == 404
    # a cron batch keeps no copies: the analysis' own small thumbnail is served, else nothing
    cron = services.batch_create(source=Batch.Source.CRON, files=[image_file(tmp_path, "a.jpg", "rust")],
                                 store_images=False)
    row = cron.images.get()
    assert client.get(thumb_url(cron)).status_code == 404
    services.batch_analyze(batch=cron, files=[("a.jpg", tmp_path / "a.jpg")])
    row.refresh_from_db()
    assert row.thumbnail.startswith("data:image/jpeg;base64,")
    response = client.get(thumb_url(cron))
    assert response.status_code == 200 and Image.open(io.BytesIO(response.content)).format == "JPEG"


def test_the_batch_list_costs_the_same_queries_for_more_rows(superuser, user, org):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = signed_in(superuser)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/admin/vision_pipeline/batch/").status_code == 200
        return len(captured)

    services.batch_create(source=Batch.Source.API, files=[], owner=user, organization=org, user_query="q")
    few = queries()
    for _ in range(5):
        services.batch_create(source=Batch.Source.API, files=[], owner=user, organization=org, user_query="q")
    assert queries() == few
