"""Routes of the predictions app (seed 004). jobsite/urls.py includes this
module at the root, so every pattern carries its full path."""
from django.urls import include, path

from jobsite.routers import SeedPathRouter
from predictions import apis
from predictions.models import BulkUploadJob

router = SeedPathRouter()
router.register("jobs", apis.PredictionJobViewSet, basename="prediction-job")

urlpatterns = [
    path("api/v1/predictions/", include(router.urls)),
]
for job_type in BulkUploadJob.JobType.values:
    urlpatterns += [
        path(f"api/v1/predictions/{job_type}/bulk-upload-async", apis.BulkUploadApi.as_view(job_type=job_type),
             name=f"prediction-{job_type}-upload"),
        path(f"api/v1/predictions/templates/{job_type}", apis.TemplateApi.as_view(job_type=job_type),
             name=f"prediction-{job_type}-template"),
    ]
