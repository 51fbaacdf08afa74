"""Tenant scoping used by every selector: a user sees their own objects and
their organizations'; superusers see everything.

Every scoped read names who is reading. ``SYSTEM`` is the explicit sentinel
for code that acts for the whole installation (the CLI, Celery tasks,
maintenance): ``user=None`` is refused, so a view that forgets ``user=``
fails loudly instead of leaking every tenant's rows.
"""
from __future__ import annotations

from django.db.models import Model, Q, QuerySet

from jobsite.exceptions import Forbidden, NotFound
from jobsite.models import Organization


class _System:
    """The installation itself: sees every tenant's objects."""

    is_authenticated = True
    is_superuser = True
    pk = None
    username = "system"

    def __repr__(self) -> str:
        return "SYSTEM"

    def __bool__(self) -> bool:
        return True


SYSTEM = _System()


def _require_reader(user) -> None:
    if user is None:
        raise TypeError("A scoped read needs user=<the request's user> or user=SYSTEM (CLI, tasks); got None.")


def user_organization_ids(user) -> list:
    if not user or not user.is_authenticated or user is SYSTEM:
        return []
    cached = getattr(user, "_jobsite_org_ids", None)
    if cached is None:
        cached = list(user.memberships.values_list("organization_id", flat=True))
        user._jobsite_org_ids = cached
    return cached


def scope_to_user(queryset: QuerySet, user, *, owner_field: str = "owner", org_field: str = "organization") -> QuerySet:
    """Filter ``queryset`` to what ``user`` may see (superusers and SYSTEM: all)."""
    _require_reader(user)
    if not user.is_authenticated:
        return queryset.none()
    if user.is_superuser:
        return queryset
    condition = Q(**{owner_field: user})
    org_ids = user_organization_ids(user)
    if org_ids:
        condition |= Q(**{f"{org_field}__in": org_ids})
    return queryset.filter(condition)


def user_can_access(obj, user, *, owner_field: str = "owner", org_field: str = "organization") -> bool:
    _require_reader(user)
    if not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    if getattr(obj, f"{owner_field}_id", None) == user.pk:
        return True
    org_id = getattr(obj, f"{org_field}_id", None)
    return org_id is not None and org_id in user_organization_ids(user)


def get_visible(
    queryset: QuerySet, user, *, lookup: dict, not_found: str, forbidden: str | None = None,
    owner_field: str = "owner", org_field: str = "organization",
) -> Model:
    """The one object matching ``lookup`` that ``user`` may see.

    Someone else's object answers 404 ``not_found`` (it is never revealed),
    unless the facade's contract asks for 403: pass ``forbidden`` (the workflow
    schedules API: "You don't have permission to access this job")."""
    if any(isinstance(value, str) and "\x00" in value for value in lookup.values()):
        # PostgreSQL refuses NUL in text: no row can match, and asking would fail (CLI, tasks).
        raise NotFound(not_found)
    scoped = scope_to_user(queryset, user, owner_field=owner_field, org_field=org_field)
    obj = scoped.filter(**lookup).first()
    if obj is not None:
        return obj
    if forbidden is not None and queryset.filter(**lookup).exists():
        raise Forbidden(forbidden)
    raise NotFound(not_found)


def user_default_organization(user) -> Organization | None:
    """The organization new objects of ``user`` belong to (their first)."""
    if not user or not user.is_authenticated or user is SYSTEM:
        return None
    membership = user.memberships.select_related("organization").order_by("created_at").first()
    return membership.organization if membership else None
