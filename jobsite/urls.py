from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from jobsite import apis, health, views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/auth/token", apis.TokenObtainApi.as_view(), name="auth-token"),
    path("health", health.HealthApi.as_view(), name="health"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", views.DocsSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", views.DocsRedocView.as_view(url_name="schema"), name="redoc"),
    path("api/v1/", views.ApiIndex.as_view(), name="api-index"),
    path("", views.home, name="home"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("api-auth/", include("rest_framework.urls")),
    path("", include("scheduling.urls")),
    path("", include("scheduling.workflows.urls")),
    path("", include("predictions.urls")),
    path("", include("vision_pipeline.urls")),
    # last: whatever /api/ path nothing above matched is a JSON 404
    re_path(r"^api/", apis.api_not_found),
]
