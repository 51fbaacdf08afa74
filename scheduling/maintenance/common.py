"""What the maintenance tasks share: their queue, option parsing (run options
arrive as JSON from the API and the CLI) and batched deletes."""
from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet

QUEUE = "maintenance"
DELETE_BATCH_SIZE = 1000


def int_option(name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().lstrip("-").isdigit():
        raise ValueError(f"{name} must be a whole number, got {value!r}.")
    number = int(value)
    if number < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {number}.")
    return number


def bool_option(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"{name} must be true or false, got {value!r}.")


def delete_in_batches(queryset: QuerySet) -> int:
    """Delete ``queryset`` a batch at a time, so one run never holds a huge
    delete (and its cascade collection) in memory or in one transaction."""
    model = queryset.model
    deleted = 0
    while True:
        pks = list(queryset.order_by("pk").values_list("pk", flat=True)[:DELETE_BATCH_SIZE])
        if not pks:
            return deleted
        with transaction.atomic():
            _, per_model = model.objects.filter(pk__in=pks).delete()
        deleted += per_model.get(model._meta.label, 0)
