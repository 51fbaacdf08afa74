"""Every log record a handler writes is redacted (jobsite.redaction.RedactingLogFilter,
on the handlers of settings.LOGGING and, in the worker and beat, on Celery's:
tests/jobsite/test_log_redaction_e2e.py checks a real worker's log file)."""
import io
import logging
import os
import subprocess
import sys

import pytest
from django.conf import settings

from jobsite import redaction
from jobsite.redaction import RedactingLogFilter, redact_log_text, remember_secret_values


@pytest.mark.parametrize(("text", "expected"), [
    ("api_key=k3y-Value_0042 page=2", "api_key=*** page=2"),
    ('{"password": "hunter2-hunter2", "user": "bob"}', '{"password": "***", "user": "bob"}'),
    ("{'client_secret': 'abc defghijk'}", "{'client_secret': '***'}"),
    ("Authorization: Bearer eyJhbGciOi.J9.x", "Authorization: Bearer ***"),
    ("headers X-Api-Key: 0123456789abcdef, Accept: */*", "headers X-Api-Key: ***, Accept: */*"),
    ("sent with bearer abcdefgh12345678", "sent with bearer ***"),
    ("GET https://bob:pa55word@api.example.com/x?token=t0k3n&page=2",
     "GET https://***@api.example.com/x?token=***&page=2"),
    # what is not a credential stays as it is
    ("max_tokens: 500, keys=3, task_id=1f2e, monkey=9", "max_tokens: 500, keys=3, task_id=1f2e, monkey=9"),
    ("password=***", "password=***"),
    ("Task scheduling.run_job[0c1d] succeeded in 0.01s: None",
     "Task scheduling.run_job[0c1d] succeeded in 0.01s: None"),
])
def test_credential_named_keys_and_urls(text, expected):
    assert redact_log_text(text) == expected


def test_remembered_values_and_secret_settings_are_redacted_as_whole_tokens():
    remember_secret_values(["zq7-Remembered-Value", "short"])
    text = f"refused zq7-Remembered-Value and {settings.SECRET_KEY}; short stays, xzq7-Remembered-Values stays"
    assert redact_log_text(text) == "refused *** and ***; short stays, xzq7-Remembered-Values stays"


def test_the_oldest_remembered_values_are_forgotten_past_the_cap(monkeypatch):
    monkeypatch.setattr(redaction, "REMEMBERED_MAX", 2)
    monkeypatch.setattr(redaction, "_remembered", {})
    remember_secret_values(["first-value-1", "second-value-2", "third-value-3"])
    assert redact_log_text("first-value-1 second-value-2 third-value-3") == "first-value-1 *** ***"


def _handler(stream):
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingLogFilter())
    return handler


def test_a_record_its_arguments_and_its_traceback_are_redacted_for_every_handler():
    # given: two handlers with the filter on one logger
    remember_secret_values(["zq7-Job-Secret-Value"])
    first, second = io.StringIO(), io.StringIO()
    logger = logging.getLogger("tests.log_redaction")
    logger.propagate = False
    logger.handlers = [_handler(first), _handler(second)]
    try:
        # when: an error is logged with the secret in its arguments and its exception
        try:
            raise ConnectionError("refused credential zq7-Job-Secret-Value (password=hunter2-hunter2)")
        except ConnectionError as exc:
            logger.error("Error calling %s in Signal.send_robust() (%s)", "receiver", exc, exc_info=exc)
    finally:
        logger.handlers = []
    # then: both handlers wrote the line and the traceback, redacted
    for stream in (first, second):
        written = stream.getvalue()
        assert "Error calling receiver in Signal.send_robust() (refused credential *** (password=***))" in written
        assert "ConnectionError: refused credential *** (password=***)" in written
        assert "zq7-Job-Secret-Value" not in written and "hunter2" not in written


def test_settings_logging_puts_the_filter_on_every_handler():
    handlers = settings.LOGGING["handlers"]
    assert handlers and all("redact" in handler.get("filters", ()) for handler in handlers.values())
    assert settings.LOGGING["filters"]["redact"]["()"] == "jobsite.redaction.RedactingLogFilter"
    root_handlers = [handler for handler in logging.getLogger().handlers if type(handler) is logging.StreamHandler]
    assert root_handlers and all(
        any(isinstance(f, RedactingLogFilter) for f in handler.filters) for handler in root_handlers)


def test_celery_logging_setup_puts_the_filter_on_its_own_handlers():
    # given: a fresh process that sets up logging as `celery worker` and `celery beat` do
    # (worker_hijack_root_logger: the root's handlers replaced by Celery's)
    script = (
        "import logging\n"
        "from jobsite.celery import app\n"
        "from jobsite.redaction import RedactingLogFilter\n"
        "app.loader.import_default_modules()\n"
        "app.log.setup(loglevel='INFO')\n"
        "loggers = [logging.getLogger(), logging.getLogger('celery.task')]\n"
        "handlers = [handler for logger in loggers for handler in logger.handlers]\n"
        "print(len(handlers), all(any(isinstance(f, RedactingLogFilter) for f in h.filters) for h in handlers))\n"
        "logging.getLogger('tests').warning('password=%s', 'hunter2-hunter2')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "DJANGO_SETTINGS_MODULE": "jobsite.settings"})
    # then: every handler Celery made has the filter, and what it writes is redacted
    assert result.returncode == 0, result.stderr
    count, all_filtered = result.stdout.split()
    assert int(count) >= 2 and all_filtered == "True", result.stdout
    assert "password=***" in result.stderr and "hunter2" not in result.stderr, result.stderr
