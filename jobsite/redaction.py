"""Redaction: what may be shown of a URL, a header dict or a line of text.

Authorization/Cookie/API-key headers, URL user info and query parameters
named like token/key/secret/password/signature become ``***`` before they
reach a log line, an error message or a stored run log. The outbound HTTP
client (jobsite.http) and everything that stores or shows text from outside
(run logs, the cluster page) use these same rules. Importing this module
also puts a redacting filter on urllib3's debug loggers.
"""
from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

from django.core.exceptions import ValidationError

#: A header or query parameter name that carries a credential.
SECRET_NAME = re.compile(r"token|key|secret|passw|pwd|signature|sig$|auth|credential|session|cookie", re.I)
_SECRET_QUERY = re.compile(
    r"(?P<name>[?&;][^=&;#\s\"'<>]*"
    r"(?:token|key|secret|passw|pwd|signature|sig|auth|credential|session)[^=&;#\s\"'<>]*=)"
    r"[^&;#\s\"'<>]*",
    re.I,
)
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/?#@\s]+@", re.I)


def redact_url(url: str) -> str:
    """``url`` with user info and secret-looking query values replaced by ``***``
    (also inside a URL passed as a query value, encoded or not) and the
    fragment dropped; safe to log or show."""
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return redact_text(str(url))
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "&".join(map(_redact_pair, parts.query.split("&")))
                       if parts.query else "", ""))


def _redact_pair(pair: str) -> str:
    name, equals, value = pair.partition("=")
    if equals and SECRET_NAME.search(unquote_plus(name)):
        return f"{name}=***"
    plain = unquote_plus(value)
    redacted = redact_text(plain)
    if redacted == plain:
        return pair
    return f"{name}{equals}{redacted if plain == value else quote(redacted, safe=':/?=@*')}"


def redact_text(text: str) -> str:
    """Free text (e.g. a third-party log line) with URL user info and secret
    query values replaced by ``***``."""
    text = _USERINFO.sub(r"\g<scheme>***@", text)
    return _SECRET_QUERY.sub(r"\g<name>***", text)


#: Credentials shorter than this are refused at save (``short_secret_names``):
#: a value that short would match ordinary words, and protects nothing.
MIN_SECRET_CHARS = 8


def short_secret_names(secrets: dict) -> list[str]:
    """The names in ``secrets`` whose value is set but shorter than
    ``MIN_SECRET_CHARS`` (an empty value means "none" and is not counted)."""
    return [str(name) for name, value in secrets.items() if value and len(str(value)) < MIN_SECRET_CHARS]


def short_secret_message(names: list[str]) -> str:
    return (f"A credential must have at least {MIN_SECRET_CHARS} characters (a shorter one would be "
            f"redacted out of ordinary words, and guessed); too short: {', '.join(names)}.")


def secrets_check(secrets: dict, *, field: str = "secrets") -> None:
    """Refuse, naming ``field``, credentials too short to redact safely."""
    short = short_secret_names(secrets or {})
    if short:
        raise ValidationError({field: [short_secret_message(short)]})


def _whole_token(value: str) -> str:
    """A pattern for ``value`` as a whole token: where it starts or ends with a
    letter or digit, no letter or digit may touch it there."""
    start = r"(?<![^\W_])" if value[0].isalnum() else ""
    end = r"(?![^\W_])" if value[-1].isalnum() else ""
    return start + re.escape(value) + end


def redact_values(text: str, secrets: Any, *, min_chars: int = 1) -> str:
    """``text`` with each whole occurrence of a secret value (or of its
    URL-encoded form) replaced by ``***``. A value inside a longer word is
    left alone: a key "end" must not turn "Backend" into "Back***". Values
    shorter than ``min_chars`` are not searched for."""
    values = {str(value) for value in secrets or () if value and len(str(value)) >= min_chars}
    values |= {quote(value, safe="") for value in values}
    if not text or not values:
        return text
    # the longest first: one value may contain another
    pattern = "|".join(_whole_token(value) for value in sorted(values, key=len, reverse=True))
    return re.sub(pattern, "***", text)


def redact_headers(headers: Any) -> dict[str, str]:
    """A copy of ``headers`` with credential-bearing values (Authorization,
    Cookie, X-Api-Key, anything named like a token/key/secret) as ``***``."""
    return {name: "***" if SECRET_NAME.search(name) else value for name, value in dict(headers or {}).items()}


class _RedactingFilter(logging.Filter):
    """urllib3 logs request lines with the full path and query at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact_text(record.getMessage()), None
        return True


for _name in ("urllib3.connectionpool", "urllib3.util.retry"):
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, _RedactingFilter) for f in _logger.filters):
        _logger.addFilter(_RedactingFilter())

