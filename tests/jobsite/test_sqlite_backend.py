"""jobsite's SQLite backend: a transaction waits for the write lock in short steps.

Runs on its own SQLite file whatever database the suite uses."""
import sqlite3
import threading
import time
from unittest import mock

import pytest
from django.db import OperationalError, connections, transaction

from jobsite.backends.sqlite3.base import (
    DatabaseWrapper,
    LONG_STEP_SECONDS,
    SHORT_STEP_SECONDS,
    SHORT_STEPS_FOR_SECONDS,
    lock_waits,
)

ALIAS = "sqlite_lock_wait"


@pytest.fixture
def open_sqlite(tmp_path, django_db_blocker):
    """Opens a jobsite-backend connection to a fresh SQLite file in WAL mode, as
    the settings do; returns (the connection's alias, the file's path)."""
    path = tmp_path / "lock.sqlite3"
    opened = []

    def open_(timeout: float):
        options = {"timeout": timeout, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
        settings_dict = connections.configure_settings({
            "default": {"ENGINE": "django.db.backends.dummy"},
            ALIAS: {"ENGINE": "jobsite.backends.sqlite3", "NAME": str(path), "OPTIONS": options},
        })[ALIAS]
        connection = DatabaseWrapper(settings_dict, ALIAS)
        connections[ALIAS] = connection  # this thread's handler: transaction.atomic(using=ALIAS) finds it
        opened.append(connection)
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
        return connection, path

    with django_db_blocker.unblock():  # a file of its own, not the suite's test database
        yield open_
        for connection in opened:
            connection.close()
    if opened:
        del connections[ALIAS]


def busy_timeout_ms(connection) -> int:
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        return cursor.fetchone()[0]


def hold_write_lock(path):
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_the_waits_are_short_steps_then_two_milliseconds_and_add_up_to_the_timeout():
    waits = list(lock_waits(0.05))

    assert sum(waits) == pytest.approx(0.05)
    short = [w for w in waits if w == SHORT_STEP_SECONDS]
    assert sum(short) == pytest.approx(SHORT_STEPS_FOR_SECONDS, abs=SHORT_STEP_SECONDS)
    assert waits[:len(short)] == short  # the short steps come first
    assert max(waits) == LONG_STEP_SECONDS  # never SQLite's own 5-100 ms sleeps


def test_a_transaction_takes_the_write_lock_once_the_other_writer_frees_it(open_sqlite):
    connection, path = open_sqlite(timeout=30)
    holder = hold_write_lock(path)
    release = threading.Timer(0.1, holder.commit)
    started = time.monotonic()
    release.start()
    try:
        with mock.patch("jobsite.backends.sqlite3.base.sleep", wraps=time.sleep) as slept, \
                transaction.atomic(using=ALIAS), connection.cursor() as cursor:
            cursor.execute("INSERT INTO t VALUES (1)")
    finally:
        release.join()
        holder.close()

    assert time.monotonic() - started >= 0.1  # it waited for the lock rather than failing...
    steps = [call.args[0] for call in slept.call_args_list]
    assert len(steps) > 1 and max(steps) <= LONG_STEP_SECONDS  # ...trying again in its own short steps
    with connection.cursor() as cursor:
        cursor.execute("SELECT x FROM t")
        assert cursor.fetchall() == [(1,)]
    # Statements outside a transaction keep SQLite's own wait of the configured length.
    assert busy_timeout_ms(connection) == 30_000


def test_a_lock_held_past_the_timeout_fails_as_database_is_locked(open_sqlite):
    connection, path = open_sqlite(timeout=0.05)
    holder = hold_write_lock(path)
    started = time.monotonic()
    try:
        with pytest.raises(OperationalError, match="database is locked"):
            with transaction.atomic(using=ALIAS), connection.cursor() as cursor:
                cursor.execute("INSERT INTO t VALUES (1)")
        waited = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()

    assert waited >= 0.05
    assert busy_timeout_ms(connection) == 50
    with transaction.atomic(using=ALIAS), connection.cursor() as cursor:  # and it works once free
        cursor.execute("INSERT INTO t VALUES (2)")
        cursor.execute("SELECT x FROM t")
        assert cursor.fetchall() == [(2,)]
