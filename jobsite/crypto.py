"""Credentials at rest: Fernet (AES-128-CBC + HMAC) from the cryptography package.

The key is FIELD_ENCRYPTION_KEY (a Fernet key, or any passphrase), else derived
from SECRET_KEY — so rotating SECRET_KEY without setting FIELD_ENCRYPTION_KEY
makes stored credentials unreadable (reported as such, never as a crash).
"""
from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from jobsite.exceptions import ApplicationError, ErrorCode
from jobsite.redaction import remember_secret_values


@lru_cache(maxsize=4)
def _fernet(material: str) -> Fernet:
    try:
        return Fernet(material.encode())
    except ValueError:  # a passphrase, not a Fernet key: derive one
        digest = hashlib.sha256(b"jobsite-field-encryption:" + material.encode()).digest()
        return Fernet(base64.urlsafe_b64encode(digest))


def _cipher() -> Fernet:
    return _fernet(settings.FIELD_ENCRYPTION_KEY or settings.SECRET_KEY)


def secrets_encrypt(values: dict[str, str]) -> str:
    """Encrypt a dict of credentials; '' for none."""
    if not values:
        return ""
    return _cipher().encrypt(json.dumps(values, sort_keys=True).encode()).decode()


def secrets_decrypt(token: str) -> dict[str, str]:
    if not token:
        return {}
    try:
        values = json.loads(_cipher().decrypt(token.encode()))
    except InvalidToken:
        raise ApplicationError(
            "Stored credentials cannot be decrypted: FIELD_ENCRYPTION_KEY (or SECRET_KEY) changed. "
            "Set the credentials again.", status=409, code=ErrorCode.CREDENTIALS_UNREADABLE,
        ) from None
    # every credential the process reads becomes one the log filter hides, wherever it is logged
    remember_secret_values(values.values() if isinstance(values, dict) else ())
    return values
