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
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from math import ceil
from typing import Any

from django.db.models import QuerySet

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class Page:
    items: list
    total: int
    page: int
    size: int

    @property
    def pages(self) -> int:
        return ceil(self.total / self.size) if self.total else 0

    @property
    def is_past_end(self) -> bool:
        """A page after the last one. Page 1 of an empty list is not: it is
        the (empty) first page."""
        return self.page > max(self.pages, 1)

    def envelope(self, items: list[Any]) -> dict[str, Any]:
        """The response body, with ``items`` already serialized."""
        return {**list_envelope(items, total=self.total), "page": self.page, "size": self.size, "pages": self.pages}


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
