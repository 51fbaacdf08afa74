"""Routes of the vision pipeline (jobsite/urls.py includes this module at the
root, so every pattern carries its full path). Seed paths have no trailing
slash; both forms are accepted (APPEND_SLASH is off, nothing redirects a POST).

Spelt out rather than left to a router: the seeds' paths are not one
collection each (``/available_models`` stands alone), and the URL names are
the ones the API index (jobsite.views) links to. A route whose actions read a
body names its parsers, as a router does for an ``@action(parser_classes=...)``:
seed 000's JSON for the cron jobs (the project's strict parser, which refuses
deep nesting, NULs and unpaired surrogates), seed 001's multipart form for a batch."""
from django.urls import re_path
from rest_framework.parsers import FormParser, MultiPartParser

from jobsite.parsers import StrictJSONParser
from vision_pipeline.apis import AvailableModelViewSet, BatchViewSet, CronJobViewSet

JOB = r"(?P<job_id>[^/]+)"
BATCH = r"(?P<batch_id>[^/]+)"

cron_jobs = CronJobViewSet.as_view({"get": "list", "post": "create"}, parser_classes=[StrictJSONParser])
batches = BatchViewSet.as_view({"get": "list", "post": "create"}, parser_classes=[MultiPartParser, FormParser])

urlpatterns = [
    re_path(r"^cron-jobs/?$", cron_jobs, name="vision-cron-jobs"),
    re_path(rf"^cron-jobs/{JOB}/?$", CronJobViewSet.as_view({"get": "retrieve", "delete": "destroy"}),
            name="vision-cron-job"),
    re_path(rf"^cron-jobs/{JOB}/activate/?$", CronJobViewSet.as_view({"post": "activate"}),
            name="vision-cron-job-activate"),
    re_path(rf"^cron-jobs/{JOB}/deactivate/?$", CronJobViewSet.as_view({"post": "deactivate"}),
            name="vision-cron-job-deactivate"),
    re_path(rf"^cron-jobs/{JOB}/executions/?$", CronJobViewSet.as_view({"get": "executions"}),
            name="vision-cron-job-executions"),
    re_path(r"^available_models/?$", AvailableModelViewSet.as_view({"get": "list"}), name="vision-available-models"),
    re_path(r"^api/v1/vision/batches/?$", batches, name="vision-batches"),
    re_path(rf"^api/v1/vision/batches/{BATCH}/?$", BatchViewSet.as_view({"get": "retrieve"}), name="vision-batch"),
    re_path(rf"^api/v1/vision/batches/{BATCH}/report/?$", BatchViewSet.as_view({"get": "report"}),
            name="vision-batch-report"),
    re_path(rf"^api/v1/vision/batches/{BATCH}/cancel/?$", BatchViewSet.as_view({"post": "cancel"}),
            name="vision-batch-cancel"),
]
