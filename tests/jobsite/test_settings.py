"""With DEBUG=false, settings refuse to load on a missing or placeholder secret.

Settings are imported once per process, so each case loads them in a fresh
interpreter with a controlled environment.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
GOOD_SECRET_KEY = "s" * 20 + "-a-long-random-production-key"  # 49 characters
CONTROLLED = ("DEBUG", "SECRET_KEY", "FIELD_ENCRYPTION_KEY", "DATABASE_URL", "JOBSITE_VAR_DIR", "JWT_SIGNING_KEY")


@pytest.fixture
def production_env(tmp_path):
    """A complete DEBUG=false environment; each test spoils one variable."""
    env = {key: value for key, value in os.environ.items() if key not in CONTROLLED}
    env.update(
        DJANGO_SETTINGS_MODULE="jobsite.settings",
        DEBUG="false",
        SECRET_KEY=GOOD_SECRET_KEY,
        FIELD_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}",
        JOBSITE_VAR_DIR=str(tmp_path / "var"),
        # ALLOWED_HOSTS keeps its default: the settings do not require it.
    )
    return env


def load_settings(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )


def test_a_complete_production_environment_loads(production_env):
    result = load_settings(production_env)
    assert result.returncode == 0, result.stderr


def test_field_encryption_key_may_be_left_empty_in_production(production_env):
    # then derived from SECRET_KEY, as deployments that never set it rely on
    result = load_settings({**production_env, "FIELD_ENCRYPTION_KEY": ""})
    assert result.returncode == 0, result.stderr


# An empty value stands for "unset": it also shadows any local .env file.
@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SECRET_KEY", "", "SECRET_KEY must be set when DEBUG is false; generate one with: python3 -c"),
        ("SECRET_KEY", "change-me-to-a-long-random-string",
         "SECRET_KEY is still the change-me placeholder of .env.example; generate one with"),
        ("SECRET_KEY", "Change-Me-but-long-enough-to-pass-the-length-check",
         "SECRET_KEY is still the change-me placeholder of .env.example"),
        ("SECRET_KEY", "short-but-not-a-placeholder-31c", "SECRET_KEY is shorter than 32 characters; generate one"),
        ("FIELD_ENCRYPTION_KEY", "change-me-fernet-key", "FIELD_ENCRYPTION_KEY is still a change-me placeholder;"),
        ("FIELD_ENCRYPTION_KEY", "a long passphrase, not a Fernet key",
         "FIELD_ENCRYPTION_KEY is not a Fernet key (32 url-safe base64-encoded bytes); generate one with"),
        ("FIELD_ENCRYPTION_KEY", Fernet.generate_key().decode()[:-4], "FIELD_ENCRYPTION_KEY is not a Fernet key"),
        ("DATABASE_URL", "", "DATABASE_URL must be set when DEBUG is false"),
        ("DATABASE_URL", "postgres://jobsite:change-me-postgres-password@postgres:5432/jobsite",
         "DATABASE_URL has the change-me placeholder password of .env.example; set a random POSTGRES_PASSWORD"),
        ("JWT_SIGNING_KEY", "change-me-to-another-long-random-string",
         "JWT_SIGNING_KEY is a change-me placeholder or shorter than 32 characters"),
        ("JWT_SIGNING_KEY", "short-jwt-key", "JWT_SIGNING_KEY is a change-me placeholder or shorter than 32"),
    ],
    ids=[
        "secret-missing", "secret-placeholder", "secret-placeholder-any-case", "secret-short",
        "fernet-placeholder", "fernet-passphrase", "fernet-truncated",
        "database-missing", "database-placeholder-password", "jwt-placeholder", "jwt-short",
    ],
)
def test_a_bad_production_setting_stops_with_one_clear_line(production_env, variable, value, message):
    # when
    result = load_settings({**production_env, variable: value})
    # then: the process fails, and the traceback ends in the one-line reason
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured: "), result.stderr
    assert message in last_line
    # the secret itself is never echoed
    if value and variable != "DATABASE_URL":
        assert value not in result.stderr
    assert "change-me-postgres-password" not in result.stderr


def test_development_still_accepts_placeholders_and_falls_back_to_sqlite(production_env):
    result = load_settings({
        **production_env, "DEBUG": "true", "SECRET_KEY": "", "DATABASE_URL": "",
        "FIELD_ENCRYPTION_KEY": "a long passphrase, not a Fernet key",
    })
    assert result.returncode == 0, result.stderr
