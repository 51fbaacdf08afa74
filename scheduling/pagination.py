"""Seed 003's page envelope: ``{"items": [...], "total", "page", "size", "pages"}``.

``page`` is 1-based; ``size`` defaults to 20 and is at most 100. Parameters are
validated by the query serializers in scheduling.serializers, so a bad page
answers 400 naming it instead of silently falling back to page 1 (DRF's
PageNumberPagination would answer 404 "Invalid page."). A page past the last
one is an empty page, not an error, so a client can loop until ``items`` is
empty or ``page == pages``.
"""
from __future__ import annotations

from dataclasses import dataclass
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

    def envelope(self, items: list[Any]) -> dict[str, Any]:
        """The response body, with ``items`` already serialized."""
        return {"items": items, "total": self.total, "page": self.page, "size": self.size, "pages": self.pages}


def paginate(queryset: QuerySet, *, page: int, size: int) -> Page:
    """Two queries whatever the page size: one COUNT, one LIMIT/OFFSET."""
    total = queryset.count()
    offset = (page - 1) * size
    items = list(queryset[offset:offset + size]) if offset < total else []
    return Page(items=items, total=total, page=page, size=size)
