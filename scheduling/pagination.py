"""The list envelopes of the API and the CLI's ``--json``.

``{"items": [...], "total"}`` (``list_envelope``) is the shape of every list
whose seed fixes no other; seed 003's page envelope adds ``"page", "size",
"pages"`` to it.

``page`` is 1-based; ``size`` defaults to 20 and is at most 100. Parameters are
validated by the query serializers in scheduling.serializers, so a bad page
answers 400 naming it instead of silently falling back to page 1 (DRF's
PageNumberPagination would answer 404 "Invalid page."). Whether a page is
past the last one is decided once, by ``Page.is_past_end``: the API answers
such a page as an empty page, not an error, so a client can loop until
``items`` is empty or ``page == pages``; the CLI refuses it (exit 1).

Lists that grow without bound (the run history: a job a minute is half a
million runs a year) are read differently, by ``paginate_large`` and
``keyset_page``:

- the order is a keyset, newest first (``RUN_ORDER``: created_at, then id),
  served by an index, so a page costs the same at row 20 and at row 900,000
  when it is asked for by **cursor**: ``next`` in every answer is an opaque
  text naming the last item's place, and ``?cursor=<next>`` answers the items
  after it. Rows inserted meanwhile (newer ones) never shift a cursor's page:
  no item is repeated or skipped.
- ``total`` is exact up to ``EXACT_TOTAL_UP_TO`` (a count that stops after
  that many rows); above, it is the database's estimate (``total_estimated``
  true): PostgreSQL's planner (the rows EXPLAIN expects), elsewhere a sample
  of the table, kept for ``ESTIMATE_KEPT_SECONDS`` for the same list. A count
  never reads the whole table.
- a page of the page/size contract still works at any depth (an OFFSET over
  the ordering index, reading ids only, then the page's rows by id); it costs
  what the offset costs: deep pages are slower than a cursor.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, replace
from datetime import datetime
from math import ceil
from typing import Any

from django.core.cache import cache
from django.db import connections
from django.db.models import Exists, OuterRef, QuerySet

from jobsite.db import MAX_ID

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
#: Totals up to this many rows are exact; above, an estimate (``total_estimated``).
EXACT_TOTAL_UP_TO = 10_000


@dataclass(frozen=True)
class Page:
    items: list
    total: int
    page: int
    size: int
    #: Only for ``paginate_large``: whether ``total`` is an estimate, and the cursor after ``items``.
    total_estimated: bool = False
    next: str | None = None
    large: bool = False

    @property
    def pages(self) -> int:
        return ceil(self.total / self.size) if self.total else 0

    @property
    def is_past_end(self) -> bool:
        """A page after the last one. Page 1 of an empty list is not: it is
        the (empty) first page. Past an estimated total is not known: the
        rows say."""
        return not self.total_estimated and self.page > max(self.pages, 1)

    def envelope(self, items: list[Any]) -> dict[str, Any]:
        """The response body, with ``items`` already serialized."""
        body = {**list_envelope(items, total=self.total), "page": self.page, "size": self.size, "pages": self.pages}
        if self.large:
            body.update(total_estimated=self.total_estimated, next=self.next)
        return body


def list_envelope(items: list[Any], *, total: int | None = None) -> dict[str, Any]:
    """``{"items": items, "total": total}``; ``total`` is ``len(items)`` unless
    ``items`` is a slice of a longer list."""
    return {"items": items, "total": len(items) if total is None else total}


def paginate(queryset: QuerySet, *, page: int, size: int) -> Page:
    """Two queries whatever the page size: one COUNT, one LIMIT/OFFSET."""
    result = Page(items=[], total=queryset.count(), page=page, size=size)
    if not result.total or result.is_past_end:
        return result
    offset = (page - 1) * size
    return replace(result, items=list(queryset[offset:offset + size]))


# ---------------------------------------------------------------------------
# Large lists: keyset order, cursors, counts that do not read the table
# ---------------------------------------------------------------------------
#: The run history's order, newest first; an index of the executions table serves it
#: (alone, or after the job or the status).
RUN_ORDER = ("created_at", "id")


class InvalidCursor(ValueError):
    """A ``cursor`` this API did not give."""


def encode_cursor(created_at: datetime, pk: int) -> str:
    """The opaque cursor naming the place of the row (created_at, pk)."""
    raw = json.dumps([created_at.isoformat(), pk], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[datetime, int]:
    """The (created_at, pk) of a cursor from ``encode_cursor``; InvalidCursor otherwise."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        created, pk = json.loads(raw)
        when = datetime.fromisoformat(created)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidCursor("Not a cursor this list gave (use the `next` of an answer).") from exc
    if when.tzinfo is None or isinstance(pk, bool) or not isinstance(pk, int) or not 0 < pk <= MAX_ID:
        raise InvalidCursor("Not a cursor this list gave (use the `next` of an answer).")
    return when, pk


def _cursor_of(item) -> str:
    return encode_cursor(*(getattr(item, name) for name in RUN_ORDER))


def _newest_first(queryset: QuerySet) -> QuerySet:
    return queryset.order_by(*(f"-{name}" for name in RUN_ORDER))


def _after(queryset: QuerySet, position: tuple[datetime, int]) -> QuerySet:
    """Rows after ``position`` in newest-first order. Written as ``created_at
    <= c AND NOT (created_at = c AND id >= i)``: one index range on every
    database (a row comparison is not one on all of them, and SQLite splits
    an OR into two ranges and then sorts)."""
    created, pk = position
    return queryset.filter(created_at__lte=created).exclude(created_at=created, id__gte=pk)


def _rows_by_id(queryset: QuerySet, ids: list[int]) -> list:
    """The rows of ``ids`` (read through the index alone), in the list's order:
    the joins of ``queryset`` (select_related) run for these rows only."""
    if not ids:
        return []
    return list(_newest_first(queryset.filter(pk__in=ids)))


@dataclass(frozen=True)
class CursorPage:
    items: list
    size: int
    next: str | None

    def envelope(self, items: list[Any]) -> dict[str, Any]:
        return {"items": items, "size": self.size, "next": self.next}


def keyset_page(queryset: QuerySet, *, size: int, cursor: tuple[datetime, int] | None = None) -> CursorPage:
    """``size`` rows after ``cursor`` (from the newest without one), and the
    cursor after them (None: the last page). Two queries at any depth."""
    scoped = _after(queryset, cursor) if cursor is not None else queryset
    ids = list(_newest_first(scoped).values_list("pk", flat=True)[:size + 1])
    items = _rows_by_id(queryset, ids[:size])
    return CursorPage(items=items, size=size, next=_cursor_of(items[-1]) if len(ids) > size else None)


def paginate_large(queryset: QuerySet, *, page: int, size: int) -> Page:
    """A page of the page/size contract over a list too large to count:
    ``total`` exact up to EXACT_TOTAL_UP_TO, estimated above (``count_rows``);
    the page's ids by OFFSET over the ordering index, then its rows by id
    (three queries, four with an estimate), and ``next``, the cursor after
    the page."""
    total, estimated = count_rows(queryset)
    result = Page(items=[], total=total, page=page, size=size, total_estimated=estimated, large=True)
    if not total or result.is_past_end:
        return result
    offset = (page - 1) * size
    ids = list(_newest_first(queryset).values_list("pk", flat=True)[offset:offset + size + 1])
    items = _rows_by_id(queryset, ids[:size])
    return replace(result, items=items, next=_cursor_of(items[-1]) if len(ids) > size else None)


def count_rows(queryset: QuerySet, *, exact_up_to: int | None = None) -> tuple[int, bool]:
    """``(count, estimated)``: exact when at most ``exact_up_to`` rows match
    (default EXACT_TOTAL_UP_TO; a count that stops after one more), else an
    estimate, never below ``exact_up_to + 1``."""
    exact_up_to = EXACT_TOTAL_UP_TO if exact_up_to is None else exact_up_to
    key = _estimate_key(queryset, exact_up_to)
    estimate = cache.get(key)
    if estimate is not None:
        return estimate, True
    capped = queryset.order_by()[:exact_up_to + 1].count()
    if capped <= exact_up_to:
        return capped, False
    connection = connections[queryset.db]
    estimate = _planner_estimate(queryset) if connection.vendor == "postgresql" else _sampled_estimate(queryset)
    estimate = max(estimate, exact_up_to + 1)
    cache.set(key, estimate, ESTIMATE_KEPT_SECONDS)
    return estimate, True


#: How long an estimated total is kept for the same list (the same query: filters
#: and what the user may see). A list that long changes little in that time, and the
#: estimate costs a capped count and a sample of ids on SQLite (100-150 ms of CPU
#: at a million runs, docs/benchmarks.md section 9), where a page costs a few ms. An
#: exact total (a short list) is never kept.
ESTIMATE_KEPT_SECONDS = 30


def _estimate_key(queryset: QuerySet, exact_up_to: int) -> str:
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    digest = hashlib.sha256(repr((queryset.db, exact_up_to, sql, params)).encode()).hexdigest()
    return f"jobsite:total-estimate:{digest}"


def _planner_estimate(queryset: QuerySet) -> int:
    """The rows PostgreSQL's planner expects the query to answer (its
    statistics: no row is read)."""
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


#: How many ids ``_sampled_estimate`` reads.
SAMPLE_SIZE = 2_000


def _sampled_estimate(queryset: QuerySet) -> int:
    """The share of matching rows among ``SAMPLE_SIZE`` ids spread evenly from
    the lowest id to the highest, times that span (an id that was deleted
    counts as not matching). The sample is read by primary key (a lookup
    each, in one query), so its cost does not grow with the table; for a list
    of more than EXACT_TOTAL_UP_TO rows (1% of a million) it holds about 20
    matches or more."""
    # two queries: SQLite reads MIN() or MAX() from the index, but not both in one
    ids = queryset.model._default_manager.using(queryset.db).order_by("pk").values_list("pk", flat=True)
    low, high = ids.first(), ids.last()
    if low is None:
        return 0
    span = high - low + 1
    if span <= SAMPLE_SIZE:
        return queryset.order_by().count()  # a small table: its count is the sample
    step = span / SAMPLE_SIZE
    sample = [low + int(k * step) for k in range(SAMPLE_SIZE)]
    # The sample drives (one lookup by primary key each), and each sampled row is then
    # tested against the list's filters by its own key: asked as one filter, SQLite may
    # drive by another index of it instead (a member's jobs: every job times every id).
    in_list = queryset.model._default_manager.using(queryset.db).filter(pk__in=sample)
    matched = in_list.filter(Exists(queryset.order_by().filter(pk=OuterRef("pk")))).count()
    return round(matched / SAMPLE_SIZE * span)
