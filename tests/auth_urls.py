"""URLconf for tests/jobsite/test_auth.py: one protected endpoint (default
authentication and IsAuthenticated from REST_FRAMEWORK) plus the token API."""
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from jobsite import apis


class WhoAmIApi(APIView):
    def get(self, request):
        return Response({"user": request.user.username})


urlpatterns = [
    path("whoami", WhoAmIApi.as_view(), name="whoami"),
    path("api/auth/token", apis.TokenObtainApi.as_view(), name="auth-token"),
]
