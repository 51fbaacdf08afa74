"""Routes of the vision pipeline (jobsite/urls.py includes this module at the
root, so every pattern carries its full path). Seed paths have no trailing
slash; both forms are accepted (APPEND_SLASH is off, nothing redirects a POST)."""
from django.urls import re_path

from vision_pipeline import apis

JOB = r"(?P<job_id>[^/]+)"
BATCH = r"(?P<batch_id>[^/]+)"

urlpatterns = [
    re_path(r"^cron-jobs/?$", apis.CronJobListApi.as_view(), name="vision-cron-jobs"),
    re_path(rf"^cron-jobs/{JOB}/?$", apis.CronJobDetailApi.as_view(), name="vision-cron-job"),
    re_path(rf"^cron-jobs/{JOB}/activate/?$", apis.CronJobStateApi.as_view(enabled=True),
            name="vision-cron-job-activate"),
    re_path(rf"^cron-jobs/{JOB}/deactivate/?$", apis.CronJobStateApi.as_view(enabled=False),
            name="vision-cron-job-deactivate"),
    re_path(rf"^cron-jobs/{JOB}/executions/?$", apis.CronJobExecutionsApi.as_view(),
            name="vision-cron-job-executions"),
    re_path(r"^available_models/?$", apis.AvailableModelsApi.as_view(), name="vision-available-models"),
    re_path(r"^api/v1/vision/batches/?$", apis.BatchListApi.as_view(), name="vision-batches"),
    re_path(rf"^api/v1/vision/batches/{BATCH}/?$", apis.BatchDetailApi.as_view(), name="vision-batch"),
    re_path(rf"^api/v1/vision/batches/{BATCH}/report/?$", apis.BatchReportApi.as_view(), name="vision-batch-report"),
    re_path(rf"^api/v1/vision/batches/{BATCH}/cancel/?$", apis.BatchCancelApi.as_view(), name="vision-batch-cancel"),
]
