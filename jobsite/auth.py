"""JWT issuance and verification (PyJWT).

Two kinds of bearer token are accepted:

* **Local** tokens (``iss == JWT_ISSUER``), issued by :func:`access_token_for`
  / ``POST /api/auth/token``: HS256 with ``JWT_SIGNING_KEY`` only.
* **External** tokens from an identity provider: HS256 with
  ``JWT_EXTERNAL_HS256_SECRET`` (Supabase style, ``aud`` "authenticated") and/or
  an asymmetric algorithm from ``JWT_EXTERNAL_ALGORITHMS`` with
  ``JWT_EXTERNAL_PUBLIC_KEY``. Unknown subjects are provisioned as users on
  their first valid token (:class:`jobsite.models.ExternalIdentity`).

The unverified header only picks *which key* to try; each key is paired with
its own fixed algorithm list, so a token can never make us verify an HS256
signature with the RSA/EC public key (HS/RS key confusion, RFC 8725 §2.1) and
``alg: none`` is never accepted.
https://pyjwt.readthedocs.io/en/stable/api.html#jwt.decode
"""
from __future__ import annotations

import logging
import re
from datetime import timedelta
from functools import lru_cache

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.exceptions import AuthenticationFailed

from jobsite.db import PkLookup
from jobsite.exceptions import ApplicationError
from jobsite.models import ExternalIdentity

logger = logging.getLogger(__name__)

LOCAL_ALGORITHMS = ["HS256"]
EXTERNAL_SECRET_ALGORITHMS = ["HS256"]
# The algorithms each kind of public key can verify. JWT_EXTERNAL_ALGORITHMS
# is narrowed to the configured key's kind, so HS* and "none" can never be
# used with it even if someone lists them there.
_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_ALGORITHMS_BY_CURVE = {"secp256r1": {"ES256"}, "secp384r1": {"ES384"}, "secp521r1": {"ES512"}}
ACCESS_TOKEN_TYPE = "access"

# Most specific first: InvalidSignatureError is a DecodeError.
_ERROR_MESSAGES: list[tuple[type[Exception], str]] = [
    (jwt.ExpiredSignatureError, "Token has expired."),
    (jwt.InvalidSignatureError, "Invalid token signature."),
    (jwt.InvalidAudienceError, "Invalid token audience."),
    (jwt.InvalidIssuerError, "Invalid token issuer."),
    (jwt.InvalidAlgorithmError, "Unsupported token algorithm."),
    (jwt.ImmatureSignatureError, "Token is not yet valid."),
    (jwt.InvalidIssuedAtError, "Invalid token issued-at (iat) claim."),
    (jwt.exceptions.InvalidSubjectError, "Invalid token subject."),
    (jwt.DecodeError, "Malformed token."),
]


def _fail(message: str) -> AuthenticationFailed:
    return AuthenticationFailed(message)


def _error_for(exc: jwt.PyJWTError) -> AuthenticationFailed:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        # The claim name comes from our own require list, never from the token.
        return _fail(f"Token is missing the '{exc.claim}' claim.")
    for exc_type, message in _ERROR_MESSAGES:
        if isinstance(exc, exc_type):
            return _fail(message)
    return _fail("Invalid token.")


# ---------------------------------------------------------------------------
# Issuance
# ---------------------------------------------------------------------------
def access_token_for(user, *, ttl: timedelta | None = None) -> str:
    """A signed local access token for ``user`` (HS256, ``JWT_SIGNING_KEY``)."""
    ttl = settings.JWT_ACCESS_TTL if ttl is None else ttl
    now = timezone.now()
    claims = {
        "sub": str(user.pk),
        "iss": settings.JWT_ISSUER,
        "aud": settings.JWT_AUDIENCE,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "typ": ACCESS_TOKEN_TYPE,
        "username": user.get_username(),
    }
    return jwt.encode(claims, settings.JWT_SIGNING_KEY, algorithm=LOCAL_ALGORITHMS[0])


def token_obtain(*, username: str, password: str) -> dict:
    """Exchange username/password for an access token.

    Raises ``ApplicationError`` (401) for a wrong username, wrong password or
    inactive account alike, so the answer does not reveal which one it was.
    """
    user = authenticate(username=username, password=password)
    if user is None or not user.is_active:
        raise ApplicationError("Invalid username or password.", status=401)
    ttl = settings.JWT_ACCESS_TTL
    return {
        "access": access_token_for(user, ttl=ttl),
        "token_type": "Bearer",
        "expires_in": int(ttl.total_seconds()),
    }


# ---------------------------------------------------------------------------
# Verification
# ---------------------------------------------------------------------------
def user_from_token(token: str):
    """The active user a bearer token stands for; provisions unknown external
    subjects. Raises ``AuthenticationFailed`` with a message safe to show."""
    try:
        header = jwt.get_unverified_header(token)
        # Unverified claims are only used to route to a key; everything is
        # checked again by the verifying decode below.
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise _error_for(exc) from None

    alg = header.get("alg")
    if not isinstance(alg, str) or alg.lower() == "none":
        raise _fail("Unsupported token algorithm.")

    if unverified.get("iss") == settings.JWT_ISSUER:
        return _local_user(token, alg)
    return _external_user(token, alg)


def _decode(token: str, *, key, algorithms: list[str], audience: str | None, issuer: str | None, require: list[str]) -> dict:
    options = {"require": require, "verify_aud": bool(audience), "verify_iss": bool(issuer)}
    try:
        return jwt.decode(
            token,
            key,
            algorithms=algorithms,
            audience=audience or None,
            issuer=issuer or None,
            leeway=settings.JWT_LEEWAY_SECONDS,
            options=options,
        )
    except jwt.PyJWTError as exc:
        raise _error_for(exc) from None


#: The token's user, read on every API request: the query compiled once (jobsite.db).
_users = PkLookup(lambda: get_user_model()._default_manager.all())


def _local_user(token: str, alg: str):
    if alg not in LOCAL_ALGORITHMS:
        raise _fail("Unsupported token algorithm.")
    claims = _decode(
        token,
        key=settings.JWT_SIGNING_KEY,
        algorithms=LOCAL_ALGORITHMS,
        audience=settings.JWT_AUDIENCE,
        issuer=settings.JWT_ISSUER,
        require=["exp", "sub", "iat", "aud", "iss"],
    )
    if claims.get("typ") != ACCESS_TOKEN_TYPE:
        raise _fail("Invalid token type.")
    User = get_user_model()
    try:
        user = _users.get(claims["sub"])
    except (User.DoesNotExist, ValueError, TypeError, DjangoValidationError):
        raise _fail("User not found.") from None
    return _ensure_active(user)



@lru_cache(maxsize=4)
def load_public_key(pem: str):
    """Parse JWT_EXTERNAL_PUBLIC_KEY once; return it and the algorithms its kind
    of key can verify. A bad key is the server's fault, never the client's."""
    try:
        key = load_pem_public_key(pem.encode())
    except (ValueError, TypeError):
        raise ImproperlyConfigured("JWT_EXTERNAL_PUBLIC_KEY is not a PEM-encoded public key.") from None
    if isinstance(key, rsa.RSAPublicKey):
        usable = _RSA_ALGORITHMS
    elif isinstance(key, ec.EllipticCurvePublicKey):
        usable = _EC_ALGORITHMS_BY_CURVE.get(key.curve.name, set())
    elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        usable = {"EdDSA"}
    else:
        usable = set()
    return key, frozenset(usable)


def _external_user(token: str, alg: str):
    secret = settings.JWT_EXTERNAL_HS256_SECRET
    public_key = settings.JWT_EXTERNAL_PUBLIC_KEY
    if not secret and not public_key:
        # Only our own tokens are trusted when no provider is configured.
        raise _fail("Invalid token issuer.")

    # Each key has its own fixed algorithm list; the header only picks the key.
    if secret and alg in EXTERNAL_SECRET_ALGORITHMS:
        key, algorithms = secret, EXTERNAL_SECRET_ALGORITHMS
    elif public_key:
        key, usable = load_public_key(public_key)
        algorithms = [name for name in settings.JWT_EXTERNAL_ALGORITHMS if name in usable]
        if alg not in algorithms:
            raise _fail("Unsupported token algorithm.")
    else:
        raise _fail("Unsupported token algorithm.")

    claims = _decode(
        token,
        key=key,
        algorithms=algorithms,
        audience=settings.JWT_EXTERNAL_AUDIENCE,
        issuer=settings.JWT_EXTERNAL_ISSUER,
        require=["exp", "sub"],
    )
    issuer = claims.get("iss", "")
    subject = claims["sub"]
    if not isinstance(issuer, str) or len(issuer) > 255:
        raise _fail("Invalid token issuer.")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise _fail("Invalid token subject.")

    identity = ExternalIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject).first()
    user = identity.user if identity else _provision_external_user(issuer=issuer, subject=subject, claims=claims)
    return _ensure_active(user)


def _ensure_active(user):
    if not user.is_active:
        raise _fail("User account is disabled.")
    return user


# ---------------------------------------------------------------------------
# Provisioning of external subjects
# ---------------------------------------------------------------------------
_USERNAME_UNSAFE = re.compile(r"[^\w.@+-]")


def _username_base(*, subject: str, claims: dict) -> str:
    email = claims.get("email")
    if isinstance(email, str) and "@" in email:
        base = _USERNAME_UNSAFE.sub("", email.strip())
        if base:
            return base[:140]
    return "ext-" + (_USERNAME_UNSAFE.sub("-", subject)[:12] or "user")


def _unique_username(base: str) -> str:
    User = get_user_model()
    field = User.USERNAME_FIELD
    candidate, n = base, 1
    while User._default_manager.filter(**{field: candidate}).exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _provision_external_user(*, issuer: str, subject: str, claims: dict):
    """Create the local user for an external subject on its first valid token.

    Never links to an existing local user by e-mail or username: the e-mail
    claim is the provider's word, and trusting it would let anyone who controls
    an account there take over a local account with the same address.
    """
    User = get_user_model()
    email = claims.get("email") if isinstance(claims.get("email"), str) else ""
    for _attempt in range(3):
        try:
            with transaction.atomic():
                user = User(**{User.USERNAME_FIELD: _unique_username(_username_base(subject=subject, claims=claims))})
                if hasattr(user, "email"):
                    user.email = email[:254]
                user.set_unusable_password()
                user.save()
                ExternalIdentity.objects.create(user=user, issuer=issuer, subject=subject)
            logger.info("Provisioned user %s for external subject %s:%s", user.pk, issuer or "-", subject)
            return user
        except IntegrityError:
            # A concurrent request provisioned this subject (or took the
            # username) first; use theirs, or try again with a fresh name.
            identity = ExternalIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject).first()
            if identity is not None:
                return identity.user
    raise _fail("Could not provision a user for this token.")
