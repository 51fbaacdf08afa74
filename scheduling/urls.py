"""Routes of the scheduling app. jobsite/urls.py includes this module at the
root, so every pattern carries its full path."""
from django.apps import apps as django_apps
from django.urls import include, path

from jobsite.parsers import StrictJSONParser
from jobsite.routers import SeedPathRouter
from scheduling import apis, calendar_apis, maintenance_apis, metrics, run_after_apis

v1 = SeedPathRouter()
v1.register("jobs", apis.JobViewSet, basename="job")
v1.register("executions", apis.ExecutionViewSet, basename="execution")
v1.register("backfills", apis.BackfillViewSet, basename="backfill")
v1.register("calendars", calendar_apis.CalendarViewSet, basename="calendar")
v1.register("maintenance", maintenance_apis.MaintenanceViewSet, basename="maintenance")
v1.register("concurrency-groups", maintenance_apis.ConcurrencyGroupViewSet, basename="concurrency-group")

urlpatterns = [
    path("metrics", metrics.metrics_view, name="metrics"),
    path("api/v1/jobs/<str:pk>/run-after", run_after_apis.RunAfterViewSet.as_view(
        {"get": "retrieve", "put": "update"}, parser_classes=[StrictJSONParser]), name="job-run-after"),
    path("api/v1/", include(v1.urls)),
]
# The notifications app's per-job routes (/api/v1/jobs/{id}/notifications...),
# when it is installed; included by name, so nothing here imports it.
if django_apps.is_installed("scheduling.notifications"):
    urlpatterns.insert(0, path("", include("scheduling.notifications.urls")))
