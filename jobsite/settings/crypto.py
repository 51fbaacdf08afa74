"""Credentials at rest (jobsite/crypto.py): the Fernet key that encrypts them."""
from django.core.exceptions import ImproperlyConfigured

from jobsite.settings.base import DEBUG, env, is_placeholder

# Derived from SECRET_KEY when unset. Optional, so that deployments which
# never set it keep reading what they stored; set it to rotate SECRET_KEY
# without losing stored credentials.
FIELD_ENCRYPTION_KEY = env.str("FIELD_ENCRYPTION_KEY", default="")
if not DEBUG and FIELD_ENCRYPTION_KEY:
    from cryptography.fernet import Fernet

    _GENERATE_FERNET = (
        'generate one with: python3 -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
    )
    if is_placeholder(FIELD_ENCRYPTION_KEY):
        raise ImproperlyConfigured(
            f"FIELD_ENCRYPTION_KEY is still a change-me placeholder; {_GENERATE_FERNET}, "
            "or leave it empty to derive it from SECRET_KEY"
        )
    # jobsite.crypto also turns a passphrase into a key, but with one unsalted
    # SHA-256 a weak passphrase is cheap to guess offline: production wants the
    # real thing. https://cryptography.io/en/latest/fernet/
    try:
        Fernet(FIELD_ENCRYPTION_KEY)
    except ValueError:  # binascii.Error is a ValueError
        raise ImproperlyConfigured(
            f"FIELD_ENCRYPTION_KEY is not a Fernet key (32 url-safe base64-encoded bytes); {_GENERATE_FERNET}"
        ) from None
