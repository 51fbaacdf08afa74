"""Routes of the predictions app (seed 004). jobsite/urls.py includes this
module at the root, so every pattern carries its full path. The jobs are a
router's collection; the upload and the template have one route per job
type, the type being part of the seed's path."""
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
        path(f"api/v1/predictions/{job_type}/bulk-upload-async",
             apis.BulkUploadViewSet.as_view({"post": "create"}, job_type=job_type), name=f"prediction-{job_type}-upload"),
        path(f"api/v1/predictions/templates/{job_type}",
             apis.TemplateViewSet.as_view({"get": "retrieve"}, job_type=job_type), name=f"prediction-{job_type}-template"),
    ]
