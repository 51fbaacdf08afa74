"""The Workers and queues page (``scheduling.cluster``'s snapshot: the
broker, each worker and the runs it holds, each queue's waiting messages),
served by the Execution admin under ``execution/workers/``, and its entry in
the admin's app list."""
from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from jobsite.admin.widgets import human_duration, when
from scheduling import cluster
from scheduling.admin.widgets import badge


class WorkersPageMixin:
    """The page, for the admin of Execution (whose view permission it takes)."""

    def workers_urls(self):
        return [("workers/", self.workers_view, "scheduling_workers")]

    def workers_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        snapshot = cluster.cluster_snapshot(user=request.user)
        now = timezone.now()
        consumers: dict[str, list[str]] = {}
        for worker in snapshot.workers:
            for queue in worker.queues:
                consumers.setdefault(queue, []).append(worker.name)
        context = {
            **self.admin_site.each_context(request),
            "title": "Workers and queues",
            "opts": self.opts,
            "snapshot": snapshot,
            "snapshot_timeout": f"{settings.ADMIN_INSPECT_TIMEOUT_SECONDS:g} s",
            "workers": [_worker_rows(worker, now) for worker in snapshot.workers],
            "queue_rows": [{"name": queue.name, "messages": queue.messages, "detail": queue.detail,
                            "consumers": consumers.get(queue.name, [])} for queue in snapshot.queues],
            "auto_refresh_seconds": settings.ADMIN_REFRESH_SECONDS,
            "executions_url": reverse("admin:scheduling_execution_changelist"),
            "media": self.media,
        }
        return TemplateResponse(request, "admin/scheduling/workers.html", context)


def _worker_rows(worker: cluster.WorkerInfo, now: datetime) -> dict:
    """A worker as the Workers and queues page shows it."""
    def task_row(task: cluster.TaskInfo) -> dict:
        execution = task.execution
        return {
            "task": task,
            "execution": execution,
            "execution_url": reverse("admin:scheduling_execution_change", args=[execution.pk]) if execution else "",
            "status_badge": badge(execution.status, execution.get_status_display()) if execution else "",
            "started": when(task.started_at) if task.started_at else "-",
            "running_for": human_duration(now - task.started_at) if task.started_at else "-",
            "eta": when(task.eta) if task.eta else "",
        }

    return {
        "info": worker,
        "uptime": human_duration(worker.uptime_seconds) if worker.uptime_seconds is not None else "-",
        "active": [task_row(task) for task in worker.active],
        "reserved": [task_row(task) for task in worker.reserved],
    }


# The page in the admin's app list (index and sidebar). The project uses
# Django's default admin site; wrapping this one documented hook
# (AdminSite.get_app_list) adds the page under "Scheduling" without swapping
# the site class in INSTALLED_APPS, and puts beat's own tables (written by the
# jobs, read-only) after everything people use, in the sidebar too.
INTERNAL_APPS = ("django_celery_beat",)


def _with_workers_page(get_app_list):
    def get_app_list_with_workers(request, app_label=None):
        app_list = get_app_list(request, app_label)
        app_list.sort(key=lambda app: app.get("app_label") in INTERNAL_APPS)  # stable: the rest keep their order
        if not request.user.has_perm("scheduling.view_execution"):
            return app_list
        for app in app_list:
            if app.get("app_label") == "scheduling" and not any(m.get("object_name") == "Workers" for m in app["models"]):
                app["models"].append({
                    "name": "Workers and queues", "object_name": "Workers", "perms": {"view": True},
                    "admin_url": reverse("admin:scheduling_workers"), "add_url": None, "view_only": True,
                })
        return app_list

    get_app_list_with_workers.wrapped = True
    return get_app_list_with_workers


if not getattr(admin.site.get_app_list, "wrapped", False):
    admin.site.get_app_list = _with_workers_page(admin.site.get_app_list)
