"""Django's SQLite backend, with the write lock waited for in short steps.

Every transaction here starts with ``BEGIN IMMEDIATE`` (settings: web, worker
and beat write at once). A writer that finds the lock taken waits in SQLite's
own busy handler, which sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, then
100 ms between tries: a lock that is free again within a millisecond can cost
a writer 100 ms while others take it in between. At 200 run requests a
second (three write transactions a run: the request, the worker's claim and
the finish) those waits made the slowest runs, 35–108 ms each
(docs/benchmarks.md). Here the transaction's start tries again every 0.2 ms
for 20 ms, then every 2 ms, up to the same timeout. Statements outside a
transaction keep SQLite's handler.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from time import sleep

from django.db.backends.sqlite3 import base

SHORT_STEP_SECONDS = 0.0002
SHORT_STEPS_FOR_SECONDS = 0.02
LONG_STEP_SECONDS = 0.002


def lock_waits(timeout: float) -> Iterator[float]:
    """The sleeps between two tries at the write lock, ``timeout`` seconds in all."""
    waited = 0.0
    while waited < timeout:
        step = SHORT_STEP_SECONDS if waited < SHORT_STEPS_FOR_SECONDS else LONG_STEP_SECONDS
        step = min(step, timeout - waited)
        yield step
        waited += step


def _is_busy(error: sqlite3.OperationalError) -> bool:
    return error.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        # What init_command or the timeout option set: restored after each start.
        self.busy_timeout_ms = connection.execute("PRAGMA busy_timeout").fetchone()[0]
        return connection

    def _start_transaction_under_autocommit(self):
        if self.transaction_mode is None:
            return super()._start_transaction_under_autocommit()
        raw = self.connection
        begin = f"BEGIN {self.transaction_mode}"
        raw.execute("PRAGMA busy_timeout = 0")
        try:
            waits = lock_waits(self.busy_timeout_ms / 1000)
            while True:
                try:
                    raw.execute(begin)
                    return
                except sqlite3.OperationalError as error:
                    wait = next(waits, None) if _is_busy(error) else None
                    if wait is None:
                        with self.wrap_database_errors:
                            raise
                sleep(wait)
        finally:
            raw.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
