"""Tenant scoping used by every selector: a user sees their own objects and
their organizations'; superusers see everything."""
from __future__ import annotations

from django.db.models import Q, QuerySet

from jobsite.models import Organization


def user_organization_ids(user) -> list:
    if not user or not user.is_authenticated:
        return []
    cached = getattr(user, "_jobsite_org_ids", None)
    if cached is None:
        cached = list(user.memberships.values_list("organization_id", flat=True))
        user._jobsite_org_ids = cached
    return cached


def scope_to_user(queryset: QuerySet, user, *, owner_field: str = "owner", org_field: str = "organization") -> QuerySet:
    """Filter ``queryset`` to what ``user`` may see (superusers: all)."""
    if user is None or not user.is_authenticated:
        return queryset.none()
    if user.is_superuser:
        return queryset
    condition = Q(**{owner_field: user})
    org_ids = user_organization_ids(user)
    if org_ids:
        condition |= Q(**{f"{org_field}__in": org_ids})
    return queryset.filter(condition)


def user_can_access(obj, user, *, owner_field: str = "owner", org_field: str = "organization") -> bool:
    if user is None or not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    if getattr(obj, f"{owner_field}_id", None) == user.pk:
        return True
    org_id = getattr(obj, f"{org_field}_id", None)
    return org_id is not None and org_id in user_organization_ids(user)


def user_default_organization(user) -> Organization | None:
    """The organization new objects of ``user`` belong to (their first)."""
    if not user or not user.is_authenticated:
        return None
    membership = user.memberships.select_related("organization").order_by("created_at").first()
    return membership.organization if membership else None
