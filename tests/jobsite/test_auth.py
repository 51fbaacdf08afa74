"""Auth: local token issuance, bearer verification of local and external
JWTs (every rejection answers 401), provisioning, the token command, admin."""
import base64
import hashlib
import hmac
import json
import time
import warnings
from datetime import timedelta
from io import StringIO

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.urls import path
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.test import APIClient

from jobsite.auth import access_token_for, token_obtain, user_from_token
from jobsite.exceptions import ApplicationError
from jobsite.models import ExternalIdentity

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/auth/token"
WHOAMI_URL = "/whoami"
# Long enough that PyJWT does not warn about short HMAC keys.
EXTERNAL_SECRET = "supabase-jwt-secret-" + "x" * 50
SUPABASE_SUB = "6f1f3c1e-2b7a-4c1e-9d55-0a1b2c3d4e5f"

protected = pytest.mark.urls("tests.auth_urls")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(obj: dict) -> str:
    return _b64(json.dumps(obj, separators=(",", ":")).encode())


def forge(header: dict, claims: dict, *, hmac_key: bytes | None = None) -> str:
    """Build a JWT by hand: PyJWT (rightly) refuses to sign with alg "none" or
    with a PEM public key as an HMAC secret, which is what attackers do."""
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    signature = b"" if hmac_key is None else hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def local_claims(user, settings, **overrides) -> dict:
    now = int(time.time())
    claims = {
        "sub": str(user.pk),
        "iss": settings.JWT_ISSUER,
        "aud": settings.JWT_AUDIENCE,
        "iat": now,
        "exp": now + 600,
        "typ": "access",
        "username": user.username,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def supabase_claims(**overrides) -> dict:
    now = int(time.time())
    claims = {
        "sub": SUPABASE_SUB,
        "aud": "authenticated",
        "role": "authenticated",
        "email": "bob@example.com",
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _pem_pair(private_key) -> tuple[str, str]:
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return private_pem, public_pem


@pytest.fixture(scope="module")
def rsa_keys():
    return _pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def ec_keys():
    return _pem_pair(ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture
def external_hs256(settings):
    settings.JWT_EXTERNAL_HS256_SECRET = EXTERNAL_SECRET
    settings.JWT_EXTERNAL_AUDIENCE = "authenticated"
    return settings


@pytest.fixture
def external_rs256(settings, rsa_keys):
    settings.JWT_EXTERNAL_PUBLIC_KEY = rsa_keys[1]
    settings.JWT_EXTERNAL_ALGORITHMS = ["RS256", "ES256"]
    settings.JWT_EXTERNAL_AUDIENCE = "authenticated"
    return settings


def assert_401(response, detail: str, *, token: str | None = None):
    assert response.status_code == 401, response.content
    assert response.json() == {"detail": detail}
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    if token:
        assert token not in response.content.decode()


# ---------------------------------------------------------------------------
# POST /api/auth/token (real URLconf)
# ---------------------------------------------------------------------------
def test_token_obtain_returns_a_bearer_token(client, user, settings):
    # when
    response = client.post(TOKEN_URL, {"username": "alice", "password": "s3cret-pass!"}, content_type="application/json")

    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"access", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == int(settings.JWT_ACCESS_TTL.total_seconds())
    claims = jwt.decode(
        body["access"], settings.JWT_SIGNING_KEY, algorithms=["HS256"], audience=settings.JWT_AUDIENCE, issuer=settings.JWT_ISSUER
    )
    assert claims["sub"] == str(user.pk)
    assert claims["typ"] == "access"
    assert claims["username"] == "alice"
    assert claims["exp"] - claims["iat"] == body["expires_in"]
    assert jwt.get_unverified_header(body["access"])["alg"] == "HS256"


def test_token_obtain_accepts_form_data(client, user):
    response = client.post(TOKEN_URL, {"username": "alice", "password": "s3cret-pass!"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "username,password",
    [("alice", "wrong"), ("nobody", "s3cret-pass!"), ("alice", "")],
    ids=["bad-password", "unknown-user", "empty-password"],
)
def test_token_obtain_rejects_bad_credentials(client, user, username, password):
    response = client.post(TOKEN_URL, {"username": username, "password": password}, content_type="application/json")
    if password == "":
        # blank is a validation error (400), not a failed login
        assert response.status_code == 400
        assert "password" in response.json()["detail"]
    else:
        assert response.status_code == 401
        assert response.json() == {"detail": "Invalid username or password."}


def test_token_obtain_rejects_inactive_user(client, user):
    user.is_active = False
    user.save()
    response = client.post(TOKEN_URL, {"username": "alice", "password": "s3cret-pass!"}, content_type="application/json")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid username or password."}


@pytest.mark.parametrize("missing", ["username", "password"])
def test_token_obtain_missing_field_is_400_naming_it(client, user, missing):
    data = {"username": "alice", "password": "s3cret-pass!"}
    del data[missing]
    response = client.post(TOKEN_URL, data, content_type="application/json")
    assert response.status_code == 400
    body = response.json()
    assert missing in body["detail"]
    assert missing in body["errors"]


@pytest.mark.parametrize("body", ['{"username": "alice", ', "not json", "[1, 2"], ids=["truncated", "text", "array"])
def test_token_obtain_malformed_json_is_400(client, user, body):
    response = client.post(TOKEN_URL, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Malformed request body")


def test_token_obtain_json_list_body_is_400(client, user):
    response = client.post(TOKEN_URL, "[]", content_type="application/json")
    assert response.status_code == 400


def test_token_obtain_service_raises_application_error(user):
    with pytest.raises(ApplicationError) as excinfo:
        token_obtain(username="alice", password="nope")
    assert excinfo.value.status == 401
    assert excinfo.value.message == "Invalid username or password."


# ---------------------------------------------------------------------------
# Protected endpoint: local tokens
# ---------------------------------------------------------------------------
@protected
def test_local_token_authenticates(client_for, user):
    response = client_for(user).get(WHOAMI_URL)
    assert response.status_code == 200
    assert response.json() == {"user": "alice"}


@protected
def test_token_from_api_authenticates(user):
    token = APIClient().post(TOKEN_URL, {"username": "alice", "password": "s3cret-pass!"}, format="json").json()["access"]
    assert bearer(token).get(WHOAMI_URL).json() == {"user": "alice"}


@protected
def test_missing_header_is_401(user):
    assert_401(APIClient().get(WHOAMI_URL), "Authentication credentials were not provided.")


@protected
@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer  ", "Bearer a b", "eyJhbGciOiJIUzI1NiJ9.e30.sig"],
    ids=["no-token", "blank-token", "two-tokens", "no-scheme"],
)
def test_malformed_header_is_401(user, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert_401(client.get(WHOAMI_URL), "Malformed Authorization header: expected 'Bearer <token>'.")


@protected
def test_other_scheme_is_left_to_other_authenticators(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic YWxpY2U6czNjcmV0")
    assert_401(client.get(WHOAMI_URL), "Authentication credentials were not provided.")


def _expired(user, settings):
    now = int(time.time())
    claims = local_claims(user, settings, iat=now - 3600, exp=now - settings.JWT_LEEWAY_SECONDS - 60)
    return jwt.encode(claims, settings.JWT_SIGNING_KEY, algorithm="HS256")


def _wrong_signature(user, settings):
    return jwt.encode(local_claims(user, settings), "another-signing-key-" + "y" * 40, algorithm="HS256")


def _tampered(user, settings):
    header, _, signature = access_token_for(user).split(".")
    forged_claims = _segment(local_claims(user, settings, sub="999999", username="root"))
    return f"{header}.{forged_claims}.{signature}"


def _wrong_audience(user, settings):
    return jwt.encode(local_claims(user, settings, aud="someone-else"), settings.JWT_SIGNING_KEY, algorithm="HS256")


def _unknown_issuer(user, settings):
    return jwt.encode(local_claims(user, settings, iss="https://evil.example"), settings.JWT_SIGNING_KEY, algorithm="HS256")


def _alg_none(user, settings):
    return forge({"alg": "none", "typ": "JWT"}, local_claims(user, settings))


def _alg_none_capitalised(user, settings):
    return forge({"alg": "None", "typ": "JWT"}, local_claims(user, settings))


def _local_hs512(user, settings):
    return jwt.encode(local_claims(user, settings), settings.JWT_SIGNING_KEY, algorithm="HS512")


def _missing_exp(user, settings):
    return jwt.encode(local_claims(user, settings, exp=None), settings.JWT_SIGNING_KEY, algorithm="HS256")


def _missing_sub(user, settings):
    return jwt.encode(local_claims(user, settings, sub=None), settings.JWT_SIGNING_KEY, algorithm="HS256")


def _wrong_type(user, settings):
    return jwt.encode(local_claims(user, settings, typ="refresh"), settings.JWT_SIGNING_KEY, algorithm="HS256")


def _unknown_user(user, settings):
    return jwt.encode(local_claims(user, settings, sub="999999"), settings.JWT_SIGNING_KEY, algorithm="HS256")


def _non_numeric_sub(user, settings):
    return jwt.encode(local_claims(user, settings, sub="alice"), settings.JWT_SIGNING_KEY, algorithm="HS256")


def _future_iat(user, settings):
    now = int(time.time())
    return jwt.encode(local_claims(user, settings, iat=now + 3600, exp=now + 7200), settings.JWT_SIGNING_KEY, algorithm="HS256")


REJECTIONS = [
    (_expired, "Token has expired."),
    (_wrong_signature, "Invalid token signature."),
    (_tampered, "Invalid token signature."),
    (_wrong_audience, "Invalid token audience."),
    (_unknown_issuer, "Invalid token issuer."),
    (_alg_none, "Unsupported token algorithm."),
    (_alg_none_capitalised, "Unsupported token algorithm."),
    (_local_hs512, "Unsupported token algorithm."),
    (_missing_exp, "Token is missing the 'exp' claim."),
    (_missing_sub, "Token is missing the 'sub' claim."),
    (_wrong_type, "Invalid token type."),
    (_unknown_user, "User not found."),
    (_non_numeric_sub, "User not found."),
    (_future_iat, "Token is not yet valid."),
    pytest.param(lambda user, settings: "not-a-jwt", "Malformed token.", id="garbage"),
    pytest.param(lambda user, settings: "a.b.c", "Malformed token.", id="garbage-segments"),
    pytest.param(lambda user, settings: "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln", "Malformed token.", id="payload-not-json"),
]


@protected
@pytest.mark.parametrize("make_token,detail", REJECTIONS, ids=lambda v: getattr(v, "__name__", "").lstrip("_") or None)
def test_rejected_local_tokens_are_401(user, settings, make_token, detail):
    token = make_token(user, settings)
    assert_401(bearer(token).get(WHOAMI_URL), detail, token=token)


@protected
def test_inactive_user_token_is_401(user):
    token = access_token_for(user)
    user.is_active = False
    user.save()
    assert_401(bearer(token).get(WHOAMI_URL), "User account is disabled.", token=token)


def test_expired_within_leeway_is_accepted(user, settings):
    now = int(time.time())
    claims = local_claims(user, settings, iat=now - 600, exp=now - settings.JWT_LEEWAY_SECONDS // 2)
    assert user_from_token(jwt.encode(claims, settings.JWT_SIGNING_KEY, algorithm="HS256")) == user


def test_local_token_with_secret_of_external_provider_is_rejected(user, external_hs256):
    # A token claiming our issuer is only ever checked with our own key.
    token = jwt.encode(local_claims(user, external_hs256), EXTERNAL_SECRET, algorithm="HS256")
    with pytest.raises(AuthenticationFailed) as excinfo:
        user_from_token(token)
    assert str(excinfo.value.detail) == "Invalid token signature."


# ---------------------------------------------------------------------------
# External tokens: HS256 shared secret (Supabase style)
# ---------------------------------------------------------------------------
@protected
def test_external_hs256_token_provisions_user_once(external_hs256):
    User = get_user_model()
    users_before = User.objects.count()
    token = jwt.encode(supabase_claims(), EXTERNAL_SECRET, algorithm="HS256")

    # when: two requests with tokens for the same subject
    first = bearer(token).get(WHOAMI_URL)
    second = bearer(jwt.encode(supabase_claims(iat=int(time.time()) + 1), EXTERNAL_SECRET, algorithm="HS256")).get(WHOAMI_URL)

    # then: one user, one identity, reused
    assert first.status_code == 200, first.content
    assert second.json() == first.json() == {"user": "bob@example.com"}
    assert User.objects.count() == users_before + 1
    identity = ExternalIdentity.objects.get()
    assert (identity.issuer, identity.subject) == ("", SUPABASE_SUB)
    assert identity.user.username == "bob@example.com"
    assert identity.user.email == "bob@example.com"
    assert not identity.user.has_usable_password()
    assert not identity.user.is_staff and not identity.user.is_superuser


def test_external_user_without_email_gets_ext_username(external_hs256):
    user = user_from_token(jwt.encode(supabase_claims(email=None), EXTERNAL_SECRET, algorithm="HS256"))
    assert user.username == "ext-" + SUPABASE_SUB[:12]


def test_external_user_never_takes_over_a_local_account(make_user, external_hs256):
    # given: a local user whose username and e-mail equal the token's e-mail
    local = make_user("bob@example.com")

    # when
    provisioned = user_from_token(jwt.encode(supabase_claims(), EXTERNAL_SECRET, algorithm="HS256"))

    # then: a new, separate user with a unique username
    assert provisioned.pk != local.pk
    assert provisioned.username == "bob@example.com-2"


def test_same_subject_from_another_issuer_is_another_user(external_hs256):
    a = user_from_token(jwt.encode(supabase_claims(iss="https://a.example"), EXTERNAL_SECRET, algorithm="HS256"))
    b = user_from_token(jwt.encode(supabase_claims(iss="https://b.example"), EXTERNAL_SECRET, algorithm="HS256"))
    assert a.pk != b.pk
    assert ExternalIdentity.objects.count() == 2


def test_external_issuer_is_checked_when_configured(external_hs256):
    external_hs256.JWT_EXTERNAL_ISSUER = "https://project.supabase.co/auth/v1"
    good = jwt.encode(supabase_claims(iss="https://project.supabase.co/auth/v1"), EXTERNAL_SECRET, algorithm="HS256")
    assert user_from_token(good).username == "bob@example.com"
    for claims, detail in [
        (supabase_claims(iss="https://evil.example"), "Invalid token issuer."),
        (supabase_claims(), "Token is missing the 'iss' claim."),
    ]:
        with pytest.raises(AuthenticationFailed) as excinfo:
            user_from_token(jwt.encode(claims, EXTERNAL_SECRET, algorithm="HS256"))
        assert str(excinfo.value.detail) == detail


@protected
def test_disabled_external_user_is_401(external_hs256):
    token = jwt.encode(supabase_claims(), EXTERNAL_SECRET, algorithm="HS256")
    get_user_model().objects.filter(pk=user_from_token(token).pk).update(is_active=False)
    assert_401(bearer(token).get(WHOAMI_URL), "User account is disabled.", token=token)


def _ext_hs256(**overrides) -> str:
    return jwt.encode(supabase_claims(**overrides), EXTERNAL_SECRET, algorithm="HS256")


EXTERNAL_REJECTIONS = [
    pytest.param(lambda: _ext_hs256(aud="anon"), "Invalid token audience.", id="wrong-audience"),
    pytest.param(lambda: _ext_hs256(aud=None), "Token is missing the 'aud' claim.", id="no-audience"),
    pytest.param(
        lambda: jwt.encode(supabase_claims(), "not-the-secret-" + "z" * 50, algorithm="HS256"),
        "Invalid token signature.",
        id="wrong-secret",
    ),
    pytest.param(lambda: _ext_hs256(exp=None), "Token is missing the 'exp' claim.", id="no-exp"),
    pytest.param(lambda: _ext_hs256(sub=None), "Token is missing the 'sub' claim.", id="no-sub"),
    pytest.param(lambda: _ext_hs256(sub=12345), "Invalid token subject.", id="numeric-sub"),
    pytest.param(
        lambda: jwt.encode(supabase_claims(), EXTERNAL_SECRET, algorithm="HS512"), "Unsupported token algorithm.", id="hs512"
    ),
    pytest.param(lambda: forge({"alg": "none", "typ": "JWT"}, supabase_claims()), "Unsupported token algorithm.", id="alg-none"),
    pytest.param(
        lambda: _ext_hs256(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600), "Token has expired.", id="expired"
    ),
]


@protected
@pytest.mark.parametrize("make_token,detail", EXTERNAL_REJECTIONS)
def test_rejected_external_hs256_tokens_are_401(external_hs256, make_token, detail):
    token = make_token()
    assert_401(bearer(token).get(WHOAMI_URL), detail, token=token)
    assert not ExternalIdentity.objects.exists()


@protected
def test_external_token_without_configured_provider_is_401(settings):
    assert not settings.JWT_EXTERNAL_HS256_SECRET and not settings.JWT_EXTERNAL_PUBLIC_KEY
    token = jwt.encode(supabase_claims(), EXTERNAL_SECRET, algorithm="HS256")
    assert_401(bearer(token).get(WHOAMI_URL), "Invalid token issuer.", token=token)


# ---------------------------------------------------------------------------
# External tokens: public key (RS256 / ES256)
# ---------------------------------------------------------------------------
@protected
@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_external_public_key_token_works(settings, rsa_keys, ec_keys, alg):
    private_pem, public_pem = rsa_keys if alg == "RS256" else ec_keys
    settings.JWT_EXTERNAL_PUBLIC_KEY = public_pem
    settings.JWT_EXTERNAL_ALGORITHMS = ["RS256", "ES256"]
    settings.JWT_EXTERNAL_ISSUER = "https://idp.example"
    claims = supabase_claims(iss="https://idp.example", sub="auth0|abc123", email="carol@example.com")
    token = jwt.encode(claims, private_pem, algorithm=alg)

    response = bearer(token).get(WHOAMI_URL)

    assert response.status_code == 200, response.content
    assert response.json() == {"user": "carol@example.com"}
    identity = ExternalIdentity.objects.get()
    assert (identity.issuer, identity.subject) == ("https://idp.example", "auth0|abc123")
    # reused on the next token
    assert bearer(jwt.encode(claims, private_pem, algorithm=alg)).get(WHOAMI_URL).json() == {"user": "carol@example.com"}
    assert ExternalIdentity.objects.count() == 1


@protected
def test_external_rs256_signed_by_another_key_is_401(external_rs256):
    other_private, _ = _pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    token = jwt.encode(supabase_claims(), other_private, algorithm="RS256")
    assert_401(bearer(token).get(WHOAMI_URL), "Invalid token signature.", token=token)


@protected
def test_external_algorithm_outside_pinned_list_is_401(external_rs256, rsa_keys):
    external_rs256.JWT_EXTERNAL_ALGORITHMS = ["ES256"]
    token = jwt.encode(supabase_claims(), rsa_keys[0], algorithm="RS256")
    assert_401(bearer(token).get(WHOAMI_URL), "Unsupported token algorithm.", token=token)


@protected
def test_algorithm_the_configured_key_cannot_verify_is_401(external_rs256, ec_keys):
    # ES256 is in JWT_EXTERNAL_ALGORITHMS, but the configured key is RSA.
    token = jwt.encode(supabase_claims(), ec_keys[0], algorithm="ES256")
    assert_401(bearer(token).get(WHOAMI_URL), "Unsupported token algorithm.", token=token)


def test_unparsable_public_key_is_a_configuration_error(settings, ec_keys):
    settings.JWT_EXTERNAL_PUBLIC_KEY = "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----"
    token = jwt.encode(supabase_claims(), ec_keys[0], algorithm="ES256")
    with pytest.raises(ImproperlyConfigured, match="JWT_EXTERNAL_PUBLIC_KEY"):
        user_from_token(token)


@protected
@pytest.mark.parametrize(
    "hs_secret,detail",
    [("", "Unsupported token algorithm."), (EXTERNAL_SECRET, "Invalid token signature.")],
    ids=["public-key-only", "public-key-and-secret"],
)
def test_hs_rs_key_confusion_is_401(external_rs256, rsa_keys, hs_secret, detail):
    """An HS256 token whose HMAC secret is the (public!) RSA PEM must never
    verify: the public key is only ever used with asymmetric algorithms."""
    external_rs256.JWT_EXTERNAL_HS256_SECRET = hs_secret
    public_pem = rsa_keys[1]
    for key in (public_pem, public_pem.strip()):
        token = forge({"alg": "HS256", "typ": "JWT"}, supabase_claims(), hmac_key=key.encode())
        assert_401(bearer(token).get(WHOAMI_URL), detail, token=token)
    assert not ExternalIdentity.objects.exists()


@protected
def test_hs_algorithms_in_external_list_are_never_used_with_the_public_key(external_rs256, rsa_keys):
    external_rs256.JWT_EXTERNAL_ALGORITHMS = ["HS256", "RS256"]  # misconfigured
    token = forge({"alg": "HS256", "typ": "JWT"}, supabase_claims(), hmac_key=rsa_keys[1].encode())
    assert_401(bearer(token).get(WHOAMI_URL), "Unsupported token algorithm.", token=token)


# ---------------------------------------------------------------------------
# OpenAPI
# ---------------------------------------------------------------------------
def test_schema_declares_bearer_auth():
    from drf_spectacular.generators import SchemaGenerator

    from jobsite import apis
    from tests.auth_urls import WhoAmIApi

    schema = SchemaGenerator(
        patterns=[path("whoami", WhoAmIApi.as_view()), path("api/auth/token", apis.TokenObtainApi.as_view())]
    ).get_schema(request=None, public=True)

    assert schema["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert {"bearerAuth": []} in schema["paths"]["/whoami"]["get"]["security"]
    token_op = schema["paths"]["/api/auth/token"]["post"]
    assert {"bearerAuth": []} not in token_op.get("security", [])
    assert set(token_op["responses"]) == {"200", "400", "401", "413", "415", "429"}


# ---------------------------------------------------------------------------
# ./manage token
# ---------------------------------------------------------------------------
def test_token_command_prints_a_working_token(user, settings):
    out = StringIO()
    call_command("token", "alice", stdout=out)
    token = out.getvalue().strip()
    assert "\n" not in token
    assert user_from_token(token) == user
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == int(settings.JWT_ACCESS_TTL.total_seconds())


def test_token_command_ttl(user):
    out = StringIO()
    call_command("token", "alice", "--ttl", "60", stdout=out)
    claims = jwt.decode(out.getvalue().strip(), options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 60


def test_token_command_unknown_user(user):
    with pytest.raises(CommandError, match=r"^No user named 'ghost'\.$"):
        call_command("token", "ghost", stdout=StringIO())


def test_token_command_inactive_user(user):
    user.is_active = False
    user.save()
    with pytest.raises(CommandError, match="inactive"):
        call_command("token", "alice", stdout=StringIO())


@pytest.mark.parametrize("ttl", ["0", "-5", "soon"])
def test_token_command_rejects_bad_ttl(user, ttl):
    with pytest.raises(CommandError, match="--ttl"):
        call_command("token", "alice", "--ttl", ttl, stdout=StringIO())


def test_access_token_for_custom_ttl(user):
    token = access_token_for(user, ttl=timedelta(minutes=5))
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 300


# ---------------------------------------------------------------------------
# Admin
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "/admin/jobsite/organization/",
        "/admin/jobsite/organization/add/",
        "/admin/jobsite/externalidentity/",
    ],
)
def test_admin_pages(client, superuser, org, user, url):
    client.force_login(superuser)
    assert client.get(url).status_code == 200


def test_admin_organization_change_page_shows_members(client, superuser, org, user):
    client.force_login(superuser)
    response = client.get(f"/admin/jobsite/organization/{org.pk}/change/")
    assert response.status_code == 200
    assert b"Membership" in response.content or b"membership" in response.content


def test_admin_external_identity_is_read_only(client, superuser, external_hs256):
    external = user_from_token(jwt.encode(supabase_claims(), EXTERNAL_SECRET, algorithm="HS256"))
    identity = ExternalIdentity.objects.get(user=external)
    client.force_login(superuser)
    assert client.get("/admin/jobsite/externalidentity/add/").status_code == 403
    response = client.get(f"/admin/jobsite/externalidentity/{identity.pk}/change/")
    assert response.status_code == 200  # view-only
    assert b'name="subject"' not in response.content


def test_a_bad_external_public_key_fails_the_system_check(settings):
    from django.core.checks import run_checks

    settings.JWT_EXTERNAL_PUBLIC_KEY = "not a pem"
    errors = [e for e in run_checks() if e.id == "jobsite.E001"]
    assert errors and "not a PEM-encoded public key" in errors[0].msg


def test_password_guessing_is_throttled(client_for, user, monkeypatch):
    from django.core.cache import cache
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"auth_token": "3/min"})
    cache.clear()
    client = client_for(None)
    codes = [
        client.post("/api/auth/token", {"username": "alice", "password": f"guess-{n}"}, format="json").status_code
        for n in range(4)
    ]
    assert codes == [401, 401, 401, 429]
    response = client.post("/api/auth/token", {"username": "alice", "password": "s3cret-pass!"}, format="json")
    assert response.status_code == 429
    assert "throttled" in response.json()["detail"].lower()
    cache.clear()


def test_a_forged_forwarded_for_does_not_dodge_the_throttle(client_for, user, monkeypatch):
    # given a client rotating X-Forwarded-For (no trusted proxy: NUM_PROXIES=0)
    from django.core.cache import cache
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"auth_token": "3/min", "auth_token_username": "1000/min"})
    cache.clear()
    client = client_for(None)
    codes = [
        client.post("/api/auth/token", {"username": f"nobody{n}", "password": "x"}, format="json",
                    HTTP_X_FORWARDED_FOR=f"203.0.113.{n}").status_code
        for n in range(5)
    ]
    # then it is still one client
    assert codes == [401, 401, 401, 429, 429]
    cache.clear()


def test_one_username_is_throttled_across_addresses(client_for, user, monkeypatch, settings):
    # given a trusted proxy that reports a different client address each time
    from django.core.cache import cache
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"auth_token": "1000/min", "auth_token_username": "3/min"})
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    cache.clear()
    client = client_for(None)
    codes = [
        client.post("/api/auth/token", {"username": "Alice", "password": f"guess-{n}"}, format="json",
                    HTTP_X_FORWARDED_FOR=f"203.0.113.{n}").status_code
        for n in range(4)
    ]
    assert codes == [401, 401, 401, 429]
    # another account from the same addresses is not held up
    response = client.post("/api/auth/token", {"username": "bob", "password": "x"}, format="json",
                           HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert response.status_code == 401
    cache.clear()


@pytest.mark.parametrize("username", ["resume a paused job", "tab\there", "ctl\x7f", "x" * 300])
def test_any_username_makes_a_cache_safe_throttle_key(username):
    # A username goes into the throttle's cache key: spaces or control characters
    # there are refused by memcached (Django warns with CacheKeyWarning).
    from django.core.cache.backends.base import BaseCache, CacheKeyWarning
    from rest_framework.test import APIRequestFactory

    from jobsite.apis import TokenObtainApi, UsernameRateThrottle

    request = TokenObtainApi().initialize_request(
        APIRequestFactory().post(TOKEN_URL, {"username": username, "password": "x"}, format="json")
    )
    key = UsernameRateThrottle().get_cache_key(request, view=None)
    assert key.startswith("throttle_auth_token_username_")
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheKeyWarning)
        BaseCache({}).validate_key(key)
    same = TokenObtainApi().initialize_request(
        APIRequestFactory().post(TOKEN_URL, {"username": f" {username.upper()} ", "password": "x"}, format="json")
    )
    assert UsernameRateThrottle().get_cache_key(same, view=None) == key  # case and spaces around still fold
