"""Routes of the workflows facade (included at the root by jobsite/urls.py,
so every pattern carries its full path)."""
from django.urls import include, path

from jobsite.routers import SeedPathRouter
from scheduling.workflows import apis

cron = SeedPathRouter()
cron.register("jobs", apis.CronJobViewSet, basename="cron-job")

workflows = SeedPathRouter()
# Before "workflows": /api/workflows/runs/... are runs, never a workflow ("runs" is a reserved id).
workflows.register("workflows/runs", apis.WorkflowRunViewSet, basename="workflow-run")
workflows.register("workflows", apis.WorkflowViewSet, basename="workflow")

urlpatterns = [
    path("api/cron/", include(cron.urls)),
    path("api/", include(workflows.urls)),
]
