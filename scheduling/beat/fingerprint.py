"""A fingerprint of every enabled PeriodicTask — how many, and the sum of a
hash of each one's name and version (its ``date_changed`` as the database
prints it) — taken in one aggregate on PostgreSQL. Beat compares it with the
one of its last listing, updated by the few tasks it lists as changed
(``Scheduler._recent_listing``): equal, nothing else changed."""
from __future__ import annotations

import hashlib

from django.db import connections


def version_hash(name: str, version: str) -> int:
    """A task's part of the fingerprint: the first 60 bits of the MD5 of its
    name and version, as ``database_fingerprint`` computes it in SQL."""
    return int(hashlib.md5(f"{name}|{version}".encode()).hexdigest()[:15], 16)


def database_fingerprint(model) -> tuple[int, int] | None:
    """(how many enabled tasks of ``model``, the sum of ``version_hash`` over
    them); None on a database other than PostgreSQL (no fingerprint there:
    beat lists every task)."""
    connection = connections[model.objects.db]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*), coalesce(sum(('x' || substr(md5(name || '|' || date_changed::text), 1, 15))"
            f"::bit(60)::bigint), 0) FROM {connection.ops.quote_name(model._meta.db_table)} WHERE enabled")
        count, total = cursor.fetchone()
    return int(count), int(total)
