"""Routes of the scheduling app. jobsite/urls.py includes this module at the
root, so every pattern carries its full path."""
from django.urls import include, path

from jobsite.routers import SeedPathRouter
from scheduling import apis

v1 = SeedPathRouter()
v1.register("jobs", apis.JobViewSet, basename="job")
v1.register("executions", apis.ExecutionViewSet, basename="execution")

urlpatterns = [
    path("api/v1/", include(v1.urls)),
]
