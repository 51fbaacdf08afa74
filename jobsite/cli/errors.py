"""Known failures of any ``./manage`` command, each as one line that says
what to do, and its exit code. Used twice, by the same function
(``known_failure``): by ``./manage``'s entry (jobsite.cli.entry) for every
command, Django's own included, and by the project's CLI commands
(jobsite.cli.command) so that ``call_command`` callers get the same line in a
CommandError.

Known: an unmigrated database, no database file yet, a database that cannot
be reached, a task broker that cannot be reached, a setting that stops the
start (ImproperlyConfigured, e.g. no SECRET_KEY with DEBUG off), Ctrl-C (130)
and output closed early (141). Anything else is a bug: it keeps its traceback.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141

# The SQLite file ./manage's entry was asked not to create (jobsite.cli.entry).
missing_sqlite_file: str | None = None


class Interrupted(CommandError):
    """Ctrl-C: one quiet line (starting with "interrupted"), exit code 130."""

    def __init__(self, detail: str = ""):
        super().__init__(f"interrupted{': ' + detail if detail else ''}", returncode=EXIT_INTERRUPTED)


@dataclass(frozen=True)
class Failure:
    message: str
    code: int = EXIT_FAILED


def _detail(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _database_label() -> str:
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"SQLite {missing_sqlite_file or db['NAME']}"
    return f"{db.get('HOST') or 'localhost'}:{db.get('PORT') or 5432}/{db['NAME']}"


def _pending_migrations() -> bool:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    try:
        executor = MigrationExecutor(connection)
        return bool(executor.migration_plan(executor.loader.graph.leaf_nodes()))
    except Exception:  # the database cannot even say: not a migration problem we can name
        return False


UNMIGRATED = ("no such table", "does not exist", "no such column", "undefined table", "undefinedtable")
UNREACHABLE = ("connection refused", "could not connect", "connection failed", "could not translate host",
               "timeout expired", "name or service not known", "no route to host", "server closed the connection",
               "password authentication failed", "unable to open database file", "connection to server")


def database_failure(exc: BaseException) -> Failure:
    detail = _detail(exc)
    lowered = detail.lower()
    if missing_sqlite_file and "unable to open database file" in lowered:
        return Failure(f"There is no database yet ({missing_sqlite_file}): run `./manage migrate` first "
                       "(`make run` does it).")
    if re.search(r'database "[^"]*" does not exist', lowered):  # PostgreSQL's FATAL at connect
        return Failure(f"The database named in DATABASE_URL does not exist ({detail}): create it (createdb), "
                       "or fix DATABASE_URL.")
    if any(word in lowered for word in UNREACHABLE):
        return Failure(f"Cannot reach the database {_database_label()} ({detail}): is it running, and is "
                       "DATABASE_URL right?")
    if "database is locked" in lowered:
        return Failure(f"The database is busy (locked) ({_database_label()}): try again in a moment.")
    if any(word in lowered for word in UNMIGRATED) or _pending_migrations():
        return Failure(f"The database is not migrated ({detail}): run `./manage migrate` "
                       f"(database: {_database_label()}).")
    return Failure(f"Database error ({detail}; database: {_database_label()}); add --traceback for details.")


def broker_failure(exc: BaseException) -> Failure:
    from django.conf import settings
    from kombu.utils.url import maybe_sanitize_url

    broker = maybe_sanitize_url(getattr(settings, "CELERY_BROKER_URL", "") or "")
    return Failure(f"Cannot reach the task broker at {broker} ({_detail(exc)}): is Redis running (`make run` "
                   "starts one), and is REDIS_URL right?")


def _is_broker_error(exc: BaseException) -> bool:
    try:
        from kombu.exceptions import OperationalError as KombuOperationalError
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover - both are dependencies
        return False
    return isinstance(exc, (KombuOperationalError, RedisConnectionError, RedisTimeoutError))


def known_failure(exc: BaseException) -> Failure | None:
    """One line and an exit code for a failure we know, else None."""
    from django.db import DatabaseError

    if isinstance(exc, Interrupted):
        return Failure(str(exc), EXIT_INTERRUPTED)
    if isinstance(exc, KeyboardInterrupt):
        return Failure("interrupted", EXIT_INTERRUPTED)
    if isinstance(exc, BrokenPipeError):
        silence_stdout()
        return Failure("output closed early (broken pipe); stopped", EXIT_BROKEN_PIPE)
    if isinstance(exc, ImproperlyConfigured):
        return Failure(f"Configuration error: {_detail(exc, 400)}")
    if isinstance(exc, DatabaseError):
        return database_failure(exc)
    if _is_broker_error(exc):
        return broker_failure(exc)
    return None


def silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null, so that the interpreter's
    last flush at exit does not fail again (Python's documented recipe)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
