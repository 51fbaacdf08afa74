"""Redaction: what may be shown of a URL, a header dict or a line of text.

Authorization/Cookie/API-key headers, URL user info and query parameters
named like token/key/secret/password/signature become ``***`` before they
reach a log line, an error message or a stored run log. The outbound HTTP
client (jobsite.http) and everything that stores or shows text from outside
(run logs, the cluster page) use these same rules. Importing this module
also puts a redacting filter on urllib3's debug loggers.

``RedactingLogFilter`` applies the same rules to every log record a handler
writes (the web's, the worker's and beat's: jobsite/settings/base.py LOGGING,
jobsite/celery.py), and also replaces the values of credential-named settings,
the credentials this process was told of (``remember_secret_values``) and the
values of credential-named keys (``api_key=…``, ``"password": "…"``) in the
message, its arguments and its traceback.
"""
from __future__ import annotations

import logging
import re
import threading
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


# ---------------------------------------------------------------------------
# Log records
# ---------------------------------------------------------------------------
#: ``name=value``, ``name: value``, ``"name": "value"`` where the name ends like a
#: credential (``api_key``, ``X-Api-Key``, ``db_password``, ``Authorization``):
#: the value (after an optional Bearer/Basic/Token scheme) becomes ``***``.
_SECRET_PAIR = re.compile(  # (the name's end is enough: what comes before it is kept as it is)
    r"""(?P<name>(?:token|secret|passw(?:or)?d|pwd|passphrase|api[-_]?key|"""
    r"""(?:access|private|secret|signing|encryption|client)[-_]?key|authorization|credentials?|cookie|sessionid|"""
    r"""signature)["']?\s*[:=]\s*(?:(?:bearer|basic|token)\s+)?)"""
    r"""(?P<value>"[^"]*"|'[^']*'|[^\s"',;}&)\]]+)""",
    re.I,
)
_CREDENTIAL_WORD = re.compile("token|secret|passw|pwd|passphrase|key|authorization|credential|cookie|sessionid|"
                              "signature")  # (searched in lower case: a cheap test before _SECRET_PAIR)
_BEARER = re.compile(r"\b(?P<scheme>bearer|basic)\s+(?!\*\*\*)[A-Za-z0-9._~+/=-]{8,}", re.I)
#: Values remembered at most (the oldest are forgotten first): a worker that ran
#: many jobs keeps its patterns small.
REMEMBERED_MAX = 64
_remembered: dict[str, None] = {}  # (insertion-ordered)
_known_lock = threading.Lock()
_known_version = 0
_known_cache: tuple[int, tuple[str, ...]] | None = None
_setting_values: list[str] | None = None


def remember_secret_values(values: Any) -> None:
    """Credentials this process holds (a job's decrypted secrets, say): from now
    on ``RedactingLogFilter`` replaces them, as whole tokens, in every log record
    of this process. Values shorter than ``MIN_SECRET_CHARS`` are ignored."""
    global _known_version
    fresh = [str(value) for value in values or () if value and len(str(value)) >= MIN_SECRET_CHARS]
    if not fresh or all(value in _remembered for value in fresh):
        return
    with _known_lock:
        for value in fresh:
            _remembered.pop(value, None)
            _remembered[value] = None
        while len(_remembered) > REMEMBERED_MAX:
            del _remembered[next(iter(_remembered))]
        _known_version += 1


#: Settings whose value is a credential (SECRET_KEY, FIELD_ENCRYPTION_KEY, JWT_SIGNING_KEY,
#: METRICS_TOKEN, EMAIL_HOST_PASSWORD, VISION_OPENAI_API_KEY, SENTRY_DSN...).
_SECRET_SETTING = re.compile(r"^[A-Z0-9_]*(SECRET|PASSWORD|TOKEN|_KEY|_DSN)$")


def secret_setting_values() -> list[str]:
    """The values of the settings named like a credential (and the database
    passwords): never in a log record or a Sentry event, whatever field they
    turn up in."""
    from django.conf import settings

    if not settings.configured:
        return []
    values = [getattr(settings, name) for name in dir(settings) if _SECRET_SETTING.search(name)]
    values += list(getattr(settings, "SECRET_KEY_FALLBACKS", None) or ())
    values += [database.get("PASSWORD") for database in getattr(settings, "DATABASES", {}).values()]
    return [value for value in values if isinstance(value, str) and len(value) >= MIN_SECRET_CHARS]


def _secret_settings() -> list[str] | None:
    """``secret_setting_values``, read once; None while settings cannot be read yet."""
    global _setting_values
    if _setting_values is None:
        try:
            from django.conf import settings

            if not settings.configured:
                return None
            _setting_values = secret_setting_values()
        except Exception:  # (settings still loading: try again at the next record)
            return None
    return _setting_values


def _known_values() -> tuple[str, ...]:
    """Every known value (and its URL-encoded form where that differs), longest
    first; built again only when the values change."""
    global _known_cache
    settings_values = _secret_settings()
    version = _known_version * 2 + (settings_values is not None)
    cached = _known_cache
    if cached is not None and cached[0] == version:
        return cached[1]
    with _known_lock:
        values = {*(settings_values or ()), *_remembered}
    values |= {quote(value, safe="") for value in values}
    ordered = tuple(sorted(values, key=len, reverse=True))  # one value may contain another
    _known_cache = (version, ordered)
    return ordered


def _redact_secret_pair(match: re.Match) -> str:
    value = match["value"]
    if value.strip("\"'") == "***":
        return match[0]
    quote_mark = value[0] if value[0] in "\"'" else ""
    return f"{match['name']}{quote_mark}***{quote_mark}"


def redact_log_text(text: str) -> str:
    """``text`` as a log line may show it: known secret values, URL credentials,
    secret-looking query values, credential-named keys' values and Bearer/Basic
    credentials replaced by ``***``."""
    if not text:
        return text
    # Cheap tests first (a substring search per known value, a word test), the
    # patterns only where they may match: most records hold no credential.
    present = [value for value in _known_values() if value in text]
    if present:
        text = re.sub("|".join(map(_whole_token, present)), "***", text)  # (re caches the pattern)
    if "://" in text:
        text = _USERINFO.sub(r"\g<scheme>***@", text)
    if "=" in text:
        text = _SECRET_QUERY.sub(r"\g<name>***", text)
    lowered = text.lower()
    if ("=" in text or ":" in text) and _CREDENTIAL_WORD.search(lowered):
        text = _SECRET_PAIR.sub(_redact_secret_pair, text)
    if "bearer" in lowered or "basic" in lowered:
        text = _BEARER.sub(lambda match: match["scheme"] + " ***", text)
    return text


_TRACEBACK_FORMATTER = logging.Formatter()


class RedactingLogFilter(logging.Filter):
    """Put on a handler (settings LOGGING, the worker's and beat's handlers: see
    jobsite/celery.py), it redacts each record the handler writes: its message
    with its arguments, its traceback and its stack (``redact_log_text``). The
    record is changed in place, once, whatever number of handlers write it: the
    message is formatted here instead of in the formatter (``args`` emptied), the
    traceback kept in ``exc_text``, which formatters use as it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format: the handler reports it as usual
            return True
        redacted = redact_log_text(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACK_FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_log_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_log_text(record.stack_info)
        record._redacted = True
        return True


def install_log_redaction(*loggers: logging.Logger) -> None:
    """A ``RedactingLogFilter`` on every handler of ``loggers`` that has none yet
    (for handlers made outside LOGGING: Celery's own, in the worker and beat)."""
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(existing, RedactingLogFilter) for existing in handler.filters):
                handler.addFilter(RedactingLogFilter())


class _RedactingFilter(logging.Filter):
    """urllib3 logs request lines with the full path and query at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact_text(record.getMessage()), None
        return True


for _name in ("urllib3.connectionpool", "urllib3.util.retry"):
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, _RedactingFilter) for f in _logger.filters):
        _logger.addFilter(_RedactingFilter())

