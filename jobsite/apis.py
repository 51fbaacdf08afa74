"""Project-level APIs (auth)."""
import hashlib

from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle
from rest_framework.views import APIView

from jobsite.auth import token_obtain


# Module-level with distinct names: drf-spectacular names schema components
# after the class, so nested "InputSerializer"s of several APIs would collide.
class TokenObtainInputSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(trim_whitespace=False, style={"input_type": "password"})


class TokenObtainOutputSerializer(serializers.Serializer):
    access = serializers.CharField(help_text="The JWT to send as 'Authorization: Bearer <access>'.")
    token_type = serializers.CharField(help_text='Always "Bearer".')
    expires_in = serializers.IntegerField(help_text="Lifetime of the token in seconds.")


_AuthError = inline_serializer(name="AuthError", fields={"detail": serializers.CharField()})


class UsernameRateThrottle(SimpleRateThrottle):
    """Login attempts per username, whatever address they come from: guessing
    one account's password from many addresses is slowed too."""

    scope = "auth_token_username"

    def get_cache_key(self, request, view):
        username = request.data.get("username") if isinstance(request.data, dict) else None
        if not isinstance(username, str) or not username:
            return None  # the serializer answers 400; nothing to count
        # Hashed: a username may hold spaces, control characters or anything else
        # a cache backend refuses in a key (memcached: CacheKeyWarning, then errors).
        ident = hashlib.sha256(username.strip().lower()[:150].encode("utf-8", "surrogatepass")).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident}


class TokenObtainApi(APIView):
    """Exchange a username and password for a bearer access token (JWT)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    # Slows password guessing: AUTH_TOKEN_THROTTLE_RATE per client address
    # (REMOTE_ADDR, or X-Forwarded-For only behind NUM_PROXIES trusted proxies)
    # and AUTH_TOKEN_USERNAME_THROTTLE_RATE per username.
    throttle_classes = [ScopedRateThrottle, UsernameRateThrottle]
    throttle_scope = "auth_token"

    @extend_schema(
        operation_id="auth_token_obtain",
        tags=["auth"],
        auth=[],
        request=TokenObtainInputSerializer,
        responses={
            200: TokenObtainOutputSerializer,
            400: OpenApiResponse(_AuthError, description="A field is missing or the body is malformed."),
            401: OpenApiResponse(_AuthError, description="Invalid username or password."),
            429: OpenApiResponse(_AuthError, description="Too many attempts from this address or for this "
                                                         "username; `Retry-After` says when to try again."),
        },
    )
    def post(self, request):
        serializer = TokenObtainInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(token_obtain(**serializer.validated_data))


@csrf_exempt
def api_not_found(request, *args, **kwargs):
    """Any /api/ path no route matches: the API's JSON 404, also with DEBUG on
    (where Django would list every URL pattern). Whatever the method: CSRF
    exempt (it changes nothing), so a PUT to a path no route matches is this
    404 too, not the CSRF middleware's HTML 403."""
    from django.http import JsonResponse

    return JsonResponse({"detail": f"No API endpoint at {request.path}."}, status=404)
