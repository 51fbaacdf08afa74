"""An analysis's images streamed into its batch (vision_pipeline/services/feed.py):
when chunk runs share the batch, each image's row is added as soon as it lands,
by the feed's own recorder thread, while the run's thread is busy elsewhere;
inside a transaction the run's own thread adds them (``pump``)."""
import threading

import pytest
from django.db import transaction

from tests.worker import wait_for
from vision_pipeline import external as external_api
from vision_pipeline import samples, services
from vision_pipeline.demo import DEMO_ORGANIZATION_ID, DemoExternalAPI
from vision_pipeline.models import Batch, BatchImage
from vision_pipeline.services.feed import ImageFeed

KEY = "feed-key"


@pytest.fixture
def external(settings, tmp_path):
    settings.VISION_STORAGE_DIR = str(tmp_path / "vision")
    server = DemoExternalAPI(key=KEY).start()
    settings.OUTBOUND_HTTP_ALLOW_HOSTS = [f"127.0.0.1:{server.port}"]
    yield server
    server.stop()


def feed_of(external, tmp_path, count=6, *, hold_last=False):
    """A batch with ``count`` photos still to arrive and its (unstarted) feed;
    with ``hold_last`` the API holds the last photo until the event returned is set."""
    external.add_analysis(images=[(f"f{n}.jpg", samples.encode(samples.variant("clean", 160, 120, seed=n)))
                                  for n in range(count)])
    held = threading.Event()
    if hold_last:
        external.hold[f"{len(external.analyses)}_f{count - 1}.jpg"] = held
    [analysis] = external_api.fetch_unprocessed(get_url=external.get_url, key=KEY,
                                                organization_id=DEMO_ORGANIZATION_ID).analyses
    batch = services.batch_create(source=Batch.Source.CRON, files=[],
                                  arriving=[document.name for document in analysis.images])
    feed = ImageFeed(batch, analysis.images, store=True, workdir=tmp_path / "work", key=KEY,
                     api_url=external.get_url)
    return batch, feed, held


def rows(batch):
    return BatchImage.objects.filter(batch=batch).count()


@pytest.mark.django_db(transaction=True)
def test_images_are_added_as_they_land_while_the_runs_thread_is_busy(external, tmp_path):
    # given a batch whose last photo the API holds back
    batch, feed, held = feed_of(external, tmp_path, hold_last=True)
    feed.start()
    try:
        # then, with no pump from the run's thread, the five others are added as they land
        wait_for(lambda: rows(batch) == 5 and feed.added == 5, timeout=20, message="the landed images' rows")
        assert not feed.arrived
        # and the run's thread is told of them once
        assert feed.pump() == 5 and feed.pump() == 0
        held.set()
        assert feed.wait(10) == 1  # the held one, once it is in
        assert feed.arrived and rows(batch) == 6
        assert sorted(feed.paths) == list(range(6)) and all(path.exists() for path in feed.paths.values())
    finally:
        held.set()
        feed.close()


@pytest.mark.django_db(transaction=True)
def test_a_failed_download_is_raised_in_the_runs_thread(external, tmp_path):
    # given a batch whose last photo the API answers 404
    batch, feed, _held = feed_of(external, tmp_path)
    del external.files[f"{len(external.analyses)}_f5.jpg"]
    feed.start()
    try:
        # then the run's next pump raises the error naming the image, and the batch never "arrives"
        def raised():
            try:
                feed.pump()
            except external_api.ExternalAPIError as exc:
                return str(exc)
            return None

        assert wait_for(raised, timeout=20, message="the failed download") == "Image f5.jpg: download returned 404"
        assert not feed.arrived
    finally:
        feed.close()


@pytest.mark.django_db
def test_inside_a_transaction_the_runs_own_thread_adds_them(external, tmp_path):
    # given a feed started inside a transaction (a row another connection added would not be part of it)
    batch, feed, _held = feed_of(external, tmp_path)
    assert transaction.get_connection().in_atomic_block
    feed.start()
    try:
        # then no recorder thread adds them: each wait of the run's thread adds what landed
        assert not [thread for thread in threading.enumerate() if thread.name == "vision-feed-recorder"]
        added = 0
        for _ in range(60):
            if feed.arrived:
                break
            added += feed.wait(0.5)
        assert added == 6 and rows(batch) == 6
    finally:
        feed.close()
