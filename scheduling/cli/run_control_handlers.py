"""What the run-control subcommands (``pause-all``, ``resume-all``,
``maintenance``) do: each calls one service or selector."""
from __future__ import annotations

import json as json_module
from datetime import timezone as dt_timezone

from django.core.management.base import CommandError
from django.core.exceptions import ValidationError

from jobsite.cli.output import Console
from jobsite.models import Organization
from scheduling.maintenance_mode import active_pauses, pause_in_words
from scheduling.models import MaintenancePause
from scheduling.pagination import list_envelope
from scheduling.services.limits import concurrency_group_set
from scheduling.services.pause_all import maintenance_pause, maintenance_resume

ACTOR = "cli"


def _organization(ref: str) -> Organization:
    found = Organization.objects.filter(name=ref).first()
    if found is None:
        try:
            found = Organization.objects.filter(pk=ref).first()
        except ValidationError:
            found = None
    if found is None:
        raise CommandError(f"No organization named or with id '{ref}'.")
    return found


def pause_all(console: Console, *, org, queue, until, reason, **_):
    if until is not None and until.tzinfo is None:
        until = until.replace(tzinfo=dt_timezone.utc)
    scope = (MaintenancePause.Scope.ORGANIZATION if org else MaintenancePause.Scope.QUEUE if queue
             else MaintenancePause.Scope.SITE)
    try:
        pause = maintenance_pause(scope=scope, organization=_organization(org) if org else None, queue=queue or "",
                                  until=until, reason=reason, actor_label=ACTOR)
    except ValidationError as exc:
        raise CommandError("; ".join(f"{field}: {' '.join(messages)}"
                                     for field, messages in exc.message_dict.items())) from None
    console.success(f"Pause {pause.pk}: {pause_in_words(pause)}.")


def resume_all(console: Console, *, pause_id, **_):
    pauses = None
    if pause_id is not None:
        pauses = list(MaintenancePause.objects.filter(pk=pause_id, ended_at__isnull=True))
        if not pauses:
            raise CommandError(f"No pause {pause_id} is in force (see `./manage jobs maintenance`).")
    ended = maintenance_resume(pauses=pauses, actor_label=ACTOR)
    if not ended:
        console.out("Nothing was paused.")
    for pause in ended:
        console.success(f"Ended pause {pause.pk} ({pause_in_words(pause)}).")


def list_pauses(console: Console, *, json=False, **_):
    pauses = active_pauses()
    if json:
        from scheduling.maintenance_apis import MaintenancePauseSerializer

        console.write(json_module.dumps(list_envelope(MaintenancePauseSerializer(pauses, many=True).data), indent=2)
                      + "\n")
        return
    if not pauses:
        console.out("Nothing is paused.")
    for pause in pauses:
        console.out(f"{pause.pk}\t{pause_in_words(pause)}\tsince {pause.started_at:%Y-%m-%d %H:%M} UTC "
                    f"by {pause.created_by}")


def group_set(console: Console, *, name, max_runs, description, **_):
    try:
        group = concurrency_group_set(name=name, max_runs=max_runs, description=description, actor_label=ACTOR)
    except ValidationError as exc:
        raise CommandError("; ".join(f"{field}: {' '.join(messages)}"
                                     for field, messages in exc.message_dict.items())) from None
    console.success(f"Concurrency group '{group.name}': at most {group.max_runs} run(s) at once.")


def run_after(console: Console, *, job, after, clear, **_):
    from scheduling.cli.refs import job_by_ref
    from scheduling.services.dependencies import job_set_run_after

    target = job_by_ref(job)
    if after or clear:
        upstreams = []
        for ref in after:
            name, _, condition = ref.rpartition(":") if ref.endswith((":success", ":finished")) else (ref, "", "success")
            upstreams.append((job_by_ref(name), condition))
        try:
            job_set_run_after(job=target, upstreams=upstreams, actor_label=ACTOR)
        except ValidationError as exc:
            raise CommandError("; ".join(" ".join(messages) for messages in exc.message_dict.values())) from None
    links = list(target.upstream_links.select_related("upstream").order_by("upstream__name"))
    if not links:
        console.out(f"Job '{target.name}' runs after no job.")
    for link in links:
        console.out(f"Job '{target.name}' runs after '{link.upstream.name}' {link.condition_label()}.")


HANDLERS = {"run-after": run_after, "pause-all": pause_all, "resume-all": resume_all, "maintenance": list_pauses, "group-set": group_set}
