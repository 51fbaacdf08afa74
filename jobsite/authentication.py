"""DRF authentication with ``Authorization: Bearer <JWT>`` (see jobsite.auth)."""
from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed


class JWTAuthentication(BaseAuthentication):
    keyword = "Bearer"
    www_authenticate_realm = "api"

    def authenticate(self, request):
        header = get_authorization_header(request)
        if not header:
            # No credentials: DRF answers 401 "Authentication credentials were
            # not provided." unless another authenticator (session) succeeds.
            return None
        parts = header.split()
        if len(parts) > 1 and parts[0].lower() != self.keyword.lower().encode():
            # Another scheme (e.g. Basic): not ours; leave it to the other
            # authenticators, as DRF's TokenAuthentication does.
            return None
        if len(parts) != 2 or parts[0].lower() != self.keyword.lower().encode():
            raise AuthenticationFailed("Malformed Authorization header: expected 'Bearer <token>'.")
        try:
            token = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed("Malformed Authorization header: the token must be ASCII.") from None
        # Imported here, not at module level: DRF imports this class while
        # rest_framework.views is still initialising, and jobsite.auth →
        # jobsite.exceptions imports rest_framework.views (circular import).
        from jobsite.auth import user_from_token

        return user_from_token(token), token

    def authenticate_header(self, request) -> str:
        # A WWW-Authenticate value makes DRF answer 401 rather than 403.
        return f'{self.keyword} realm="{self.www_authenticate_realm}"'


class JWTAuthenticationScheme(OpenApiAuthenticationExtension):
    """Shows bearer JWT auth in the OpenAPI schema (drf-spectacular)."""

    target_class = "jobsite.authentication.JWTAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Bearer", bearer_format="JWT")
