"""Base classes every app's admin builds on: read-only history, lists that
reload themselves while a row on them is going, and the plumbing of buttons
and actions that call a service (a refusal or a broker outage is a message on
the page, never a 500)."""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import quote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from jobsite.admin.widgets import OpsMedia, admin_change_url, refreshing
from jobsite.exceptions import ApplicationError, error_message

logger = logging.getLogger(__name__)


class ReadOnlyAdminMixin:
    """History and identities are written by services, never by hand. For
    model admins and inlines alike. ``deletable``: rows may still be deleted
    by hand (never added or edited)."""

    deletable = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return self.deletable and super().has_delete_permission(request, obj)


class ReadOnlyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    class Media(OpsMedia):
        pass


class RefreshingListMixin:
    """A change list that reloads itself while a row it shows is going."""

    change_list_template = "admin/jobsite/refreshing_change_list.html"

    def is_going(self, obj) -> bool:
        """Whether ``obj`` (a row of the list) is still queued or running."""
        raise NotImplementedError

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        cl = (getattr(response, "context_data", None) or {}).get("cl")
        return refreshing(response, cl is not None and any(self.is_going(obj) for obj in cl.result_list))


class LightChangeList(ChangeList):
    """Django's change list with one ``reverse()`` a page for the rows' links,
    not one a row (bench_admin measured 50 of them at ~0.15 ms each under load)."""

    def url_for_result(self, result):
        template = getattr(self, "_row_url", None)
        if template is None:
            marker = "987654321"
            url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=(marker,),
                          current_app=self.model_admin.admin_site.name)
            template = self._row_url = url.rsplit(marker, 1)
        prefix, suffix = template
        return f"{prefix}{quote(getattr(result, self.pk_attname))}{suffix}"


class LightRowsMixin:
    """Lists of many rows: each row's link and action checkbox built as plain
    text, not through ``reverse()`` and a form widget's template per row
    (the checkbox's template alone cost the jobs list ~40 ms a page of 50)."""

    def get_changelist(self, request, **kwargs):
        return LightChangeList

    def get_empty_value_display(self):
        # Django asks for it once a cell, by an AttributeError when the admin sets none of its own
        return mark_safe(getattr(self, "empty_value_display", None) or self.admin_site.empty_value_display)

    def row_label(self, obj) -> str:
        """What the row's checkbox selects, for screen readers."""
        return str(obj)

    @admin.display(description=mark_safe('<input type="checkbox" id="action-toggle" aria-label="Select all">'))
    def action_checkbox(self, obj):
        return format_html('<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
                           ACTION_CHECKBOX_NAME, obj.pk, f"Select {self.row_label(obj)}")


def broker_problem(exc: Exception) -> str:
    return f"failed ({type(exc).__name__}: {' '.join(str(exc).split())}); is the broker up?"


def attempt(call: Callable[[], Any]) -> tuple[Any, str | None]:
    """``call()`` (a service) for an admin page: ``(its result, None)``, or
    ``(None, what to tell the operator)`` when it was refused or failed."""
    try:
        return call(), None
    except (ValidationError, ApplicationError) as exc:
        return None, error_message(exc)
    except Exception as exc:  # Celery messages go out on commit: a broker outage surfaces here
        logger.exception("an admin call (%s) failed", getattr(call, "__qualname__", call))
        return None, broker_problem(exc)


def act_on_each(model_admin: admin.ModelAdmin, request, objects: Iterable, call: Callable[[Any], Any], *,
                done: Callable[[list], str], label: Callable[[Any], str] | None = None) -> None:
    """An action: ``call(obj)`` for each selected object, then one success
    message ``done(results)`` for those that went through and a warning for
    each one refused (prefixed with ``label(obj)``)."""
    results, refused = [], []
    for obj in objects:
        result, problem = attempt(functools.partial(call, obj))
        if problem is None:
            results.append(result)
        else:
            refused.append(f"{label(obj)}: {problem}" if label else problem)
    if results:
        model_admin.message_user(request, done(results), messages.SUCCESS)
    for reason in refused:
        model_admin.message_user(request, reason, messages.WARNING)


class ObjectToolsMixin:
    """Pages of an admin beyond Django's own, such as the buttons on an
    object's page (object tools posting to a view of this admin).

    ``tool_urls()`` lists them as ``(route, view, url name)``; each goes
    through the admin site's login and CSRF checks, and a view states its
    HTTP methods itself (``method_decorator(require_POST)``)."""

    def tool_urls(self) -> list[tuple[str, Callable, str]]:
        return []

    def get_urls(self):
        site = self.admin_site
        own = [path(route, site.admin_view(view), name=name) for route, view, name in self.tool_urls()]
        return [*own, *super().get_urls()]

    def tool_object(self, request, object_id):
        """The object a button acts on, if this user may see it."""
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404(f"No {self.opts.verbose_name} {object_id} visible to you.")
        return obj

    def tool_call(self, request, call: Callable[[], Any], *, refused: str = ""):
        """``call()``'s result, or None after a warning (``refused`` + why)."""
        result, problem = attempt(call)
        if problem is not None:
            self.message_user(request, refused + problem, messages.WARNING)
        return result

    @staticmethod
    def back_to(obj) -> HttpResponseRedirect:
        """Back to ``obj``'s change page."""
        return HttpResponseRedirect(admin_change_url(obj))
