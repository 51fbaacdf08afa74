"""Auth: JWT (PyJWT). Local tokens are HS256 signed with JWT_SIGNING_KEY;
external identity providers: HS256 shared secret or RS256/ES256 public key."""
from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured

from jobsite.settings.base import DEBUG, SECRET_KEY, SECRET_KEY_MIN_LENGTH, env, generate_secret_hint, is_placeholder

JWT_SIGNING_KEY = env.str("JWT_SIGNING_KEY", default="") or SECRET_KEY
if not DEBUG and (is_placeholder(JWT_SIGNING_KEY) or len(JWT_SIGNING_KEY) < SECRET_KEY_MIN_LENGTH):
    # A placeholder from .env.example would let anyone forge a token for any user.
    raise ImproperlyConfigured(
        f"JWT_SIGNING_KEY is a change-me placeholder or shorter than {SECRET_KEY_MIN_LENGTH} characters; "
        f"{generate_secret_hint} (or leave it unset to use SECRET_KEY)"
    )
JWT_ISSUER = env.str("JWT_ISSUER", default="jobsite")
JWT_AUDIENCE = env.str("JWT_AUDIENCE", default="jobsite")
JWT_ACCESS_TTL = timedelta(seconds=env.int("JWT_ACCESS_TTL_SECONDS", default=3600))
JWT_LEEWAY_SECONDS = env.int("JWT_LEEWAY_SECONDS", default=30)
# External provider (e.g. Supabase: HS256 secret, aud "authenticated").
JWT_EXTERNAL_HS256_SECRET = env.str("JWT_EXTERNAL_HS256_SECRET", default="")
JWT_EXTERNAL_PUBLIC_KEY = env.str("JWT_EXTERNAL_PUBLIC_KEY", default="").replace("\\n", "\n")
JWT_EXTERNAL_ALGORITHMS = env.list("JWT_EXTERNAL_ALGORITHMS", default=["RS256", "ES256"])
JWT_EXTERNAL_AUDIENCE = env.str("JWT_EXTERNAL_AUDIENCE", default="authenticated")
JWT_EXTERNAL_ISSUER = env.str("JWT_EXTERNAL_ISSUER", default="")
