"""What a run leaves behind for whoever debugs it: its traceback and its log.

``capture(execution=...)`` wraps one executor run in the worker. While it is
open, every log record at INFO and above (the executor's loggers and whatever
they call) and everything printed to stdout/stderr is collected; when it
closes, the log and — if the run raised — the traceback are written to the
Execution. Both are size-capped and have the job's secrets, URL credentials
and credential headers replaced by ``***`` before they are stored.

While the run goes on, the log is also written every few seconds, so the API
and the admin show a long run's progress (and a run that a cancel terminated
keeps what it logged until then).

Which records belong to which run: in a prefork or solo worker a process runs
one task at a time, so every thread's records belong to the one open capture
(an executor's download threads included). With several captures open in one
process (a threads pool), a record goes to the capture of the thread that
emitted it and is dropped when that thread has none, rather than guessed.
"""
from __future__ import annotations

import collections
import logging
import re
import sys
import threading
import time
import traceback as traceback_module
from collections.abc import Iterable

from jobsite.redaction import redact_text, redact_values

logger = logging.getLogger(__name__)

#: Stored traceback: its last this many characters (the innermost frames and the error).
TRACEBACK_MAX_CHARS = 20 * 1024
#: Stored log: the first quarter and the last three quarters of this many characters.
LOG_MAX_CHARS = 64 * 1024
LOG_LEVEL = logging.INFO
FLUSH_INTERVAL_SECONDS = 2.0
#: Secrets shorter than this are not searched for: replacing every "ab" in a log
#: would make it unreadable, and a credential that short protects nothing.
MIN_SECRET_CHARS = 4
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Prints in a Celery worker reach logging as "celery.redirected"; the stdout tee
# has them already.
_SKIPPED_LOGGERS = ("celery.redirected",)

# "Authorization: Bearer x", "'X-Api-Key': 'x'", "cookie=x" in free text: a
# header dict that found its way into a message (jobsite.redaction.redact_headers
# covers the dicts themselves, before they are logged).
_HEADER_VALUE = re.compile(
    r"""(?P<name>["']?(?:proxy-)?(?:authorization|cookie|set-cookie|x-api-key|api[-_]?key|x-auth-token)["']?\s*[:=]\s*["']?)"""
    r"""(?:(?:bearer|basic|token)\s+)?[^\s"',;}&]+""",
    re.I,
)
_BEARER = re.compile(r"\b(?P<scheme>bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}", re.I)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the given secret values (and their URL-encoded forms),
    URL credentials and credential-bearing header values replaced by ``***``."""
    if not text:
        return text
    text = redact_values(text, secrets, min_chars=MIN_SECRET_CHARS)  # whole tokens only
    text = redact_text(text)  # jobsite.redaction: user info in URLs, secret-looking query values
    text = _HEADER_VALUE.sub(lambda m: m.group("name") + "***", text)
    return _BEARER.sub(lambda m: m.group("scheme") + " ***", text)


def tail(text: str, limit: int) -> str:
    """The last ``limit`` characters of ``text``, saying how much was cut."""
    if len(text) <= limit:
        return text
    marker = f"[… first {len(text) - limit:,} characters cut …]\n"
    return marker + text[len(text) - limit:]


class _BoundedText:
    """Keeps the head and the tail of a stream of text within ``limit`` characters."""

    def __init__(self, limit: int):
        self.head_limit = limit // 4
        self.tail_limit = limit - self.head_limit
        self.head: list[str] = []
        self.head_size = 0
        self.tail: collections.deque[str] = collections.deque()
        self.tail_size = 0
        self.cut = 0
        self.lock = threading.Lock()

    def add(self, text: str) -> None:
        with self.lock:
            if self.head_size < self.head_limit:
                room = self.head_limit - self.head_size
                self.head.append(text[:room])
                self.head_size += min(room, len(text))
                text = text[room:]
                if not text:
                    return
            self.tail.append(text)
            self.tail_size += len(text)
            while self.tail_size > self.tail_limit and self.tail:
                extra = self.tail_size - self.tail_limit
                first = self.tail[0]
                if len(first) <= extra:
                    self.tail.popleft()
                    self.tail_size -= len(first)
                    self.cut += len(first)
                else:
                    self.tail[0] = first[extra:]
                    self.tail_size -= extra
                    self.cut += extra

    def text(self) -> str:
        with self.lock:
            middle = f"\n[… {self.cut:,} characters cut …]\n" if self.cut else ""
            return "".join(self.head) + middle + "".join(self.tail)


# ---------------------------------------------------------------------------
# Routing records and prints to the open captures of this process
# ---------------------------------------------------------------------------
_registry_lock = threading.RLock()
_captures: dict[int, "RunCapture"] = {}  # thread id → capture


def _capture_for_current_thread() -> "RunCapture | None":
    captures = _captures
    if not captures:
        return None
    own = captures.get(threading.get_ident())
    if own is not None:
        return own
    if len(captures) == 1:
        return next(iter(captures.values()))
    return None


class _Handler(logging.Handler):
    """Attached to the root logger while any capture is open."""

    def __init__(self):
        super().__init__(level=LOG_LEVEL)
        self.setFormatter(logging.Formatter(LOG_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_SKIPPED_LOGGERS) or record.name == __name__:
            return
        target = _captures.get(record.thread) or (next(iter(_captures.values())) if len(_captures) == 1 else None)
        if target is None:
            return
        try:
            target.write(self.format(record) + "\n")
        except Exception:  # a log line must never break the run
            self.handleError(record)


class _Tee:
    """Stands in for sys.stdout/sys.stderr: writes through, and copies into the capture."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        target = _capture_for_current_thread()
        if target is not None and text:
            target.write(str(text))
        return self._stream.write(text)

    def flush(self):
        return self._stream.flush()

    def __getattr__(self, name):
        return getattr(self._stream, name)


_handler = _Handler()
_saved_streams: tuple | None = None


def _attach(capture: "RunCapture") -> None:
    global _saved_streams
    with _registry_lock:
        if not _captures:
            logging.getLogger().addHandler(_handler)
            _saved_streams = (sys.stdout, sys.stderr)
            sys.stdout, sys.stderr = _Tee(sys.stdout), _Tee(sys.stderr)
        _captures[capture.thread_id] = capture


def _detach(capture: "RunCapture") -> None:
    global _saved_streams
    with _registry_lock:
        _captures.pop(capture.thread_id, None)
        if not _captures:
            logging.getLogger().removeHandler(_handler)
            if _saved_streams is not None:
                sys.stdout, sys.stderr = _saved_streams
                _saved_streams = None


# ---------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------
class RunCapture:
    """The log and traceback of one execution; use through :func:`capture`."""

    def __init__(self, *, execution_id: int, secrets: Iterable[str] = (), flush_interval: float = FLUSH_INTERVAL_SECONDS):
        self.execution_id = execution_id
        self.secrets = [s for s in secrets if isinstance(s, str)]
        self.thread_id = threading.get_ident()
        self.flush_interval = flush_interval
        self.traceback = ""
        self._log = _BoundedText(LOG_MAX_CHARS)
        self._last_flush = time.monotonic()
        self._flushing = False
        self._flushed = False  # a log was stored while running

    # -- collecting ----------------------------------------------------------
    def write(self, text: str) -> None:
        self._log.add(redact(text, self.secrets))
        if (threading.get_ident() == self.thread_id and not self._flushing
                and time.monotonic() - self._last_flush >= self.flush_interval):
            self._flush_running()

    def redact(self, text: str) -> str:
        """``text`` (an error message, say) with this run's secrets redacted."""
        return redact(text, self.secrets)

    @property
    def log(self) -> str:
        return redact(self._log.text(), self.secrets)

    def keep_traceback(self, exc: BaseException) -> None:
        text = "".join(traceback_module.format_exception(type(exc), exc, exc.__traceback__))
        self.traceback = tail(redact(text, self.secrets), TRACEBACK_MAX_CHARS)

    # -- storing -------------------------------------------------------------
    def _flush_running(self) -> None:
        """The log so far, while the run is still running (a cancel or finish wins)."""
        from scheduling.models import Execution

        self._flushing = True  # the write below may log (DEBUG SQL): never recurse
        try:
            Execution.objects.filter(pk=self.execution_id, status=Execution.Status.RUNNING).update(log=self.log)
            self._flushed = True
        except Exception:  # e.g. inside the executor's broken transaction: the final save still comes
            pass
        finally:
            self._last_flush = time.monotonic()
            self._flushing = False

    def save(self) -> None:
        """Store the log and the traceback, whatever the execution's status now."""
        from scheduling.models import Execution

        log = self.log
        if not log and not self.traceback and not self._flushed:
            return  # nothing to store: the columns are still blank (one write less per quiet run)
        self._flushing = True
        try:
            Execution.objects.filter(pk=self.execution_id).update(log=log, traceback=self.traceback)
        except Exception:  # never lose the run's outcome over its log
            logger.exception("could not store the log of execution %s", self.execution_id)
        finally:
            self._flushing = False

    # -- context manager -------------------------------------------------------
    def __enter__(self) -> "RunCapture":
        _attach(self)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        _detach(self)
        if exc is not None:
            self.keep_traceback(exc)
        self.save()
        return False  # the caller records the outcome


def capture(*, execution, secrets: Iterable[str]) -> RunCapture:
    """A :class:`RunCapture` for ``execution``, redacting ``secrets`` (its job's)."""
    return RunCapture(execution_id=execution.pk, secrets=secrets)
