"""Reads of workflows, their schedules (jobs of kind ``workflow``) and runs.

Every selector takes ``user=`` explicitly (``jobsite.tenancy.SYSTEM`` for
tasks). Seeing a workflow follows the shared tenancy rules (owner,
organization, superusers; someone else's is a 404); *using* one is stricter
(``workflow_usable_by``). Schedules are per user: a ``job_id`` names one of
the *caller's* jobs, and one that only someone else has answers 403 with the
contract's message.
"""
from __future__ import annotations

from django.db.models import QuerySet

from jobsite.exceptions import Forbidden, NotFound
from jobsite.tenancy import get_visible, scope_to_user, user_organization_ids
from scheduling import selectors as core_selectors
from scheduling.models import Execution, Job
from scheduling.workflows.models import Workflow

WORKFLOW_KIND = "workflow"


# ---------------------------------------------------------------------------
# Who "user_id" is (seed 002)
# ---------------------------------------------------------------------------
def user_seed_id(user) -> str:
    """The ``user_id`` seed 002 shows for ``user``: the identity provider's
    subject (a Supabase user uuid) when they log in with one, else the local id."""
    identity = user.external_identities.order_by("created_at").first() if user.pk else None
    return identity.subject if identity is not None else str(user.pk)


def user_is(user, user_id) -> bool:
    """Whether ``user_id`` (a request's) names ``user``: their provider
    subject, their local id or their username."""
    if not isinstance(user_id, str) or not user_id or not getattr(user, "pk", None):
        return False
    if user_id in (str(user.pk), user.get_username()):
        return True
    return user.external_identities.filter(subject=user_id).exists()


# ---------------------------------------------------------------------------
# Workflows
# ---------------------------------------------------------------------------
def workflow_list(*, user) -> QuerySet[Workflow]:
    return scope_to_user(Workflow.objects.select_related("owner", "organization"), user).order_by("id")


def workflow_get(*, user, workflow_id: str) -> Workflow:
    return get_visible(
        Workflow.objects.select_related("owner", "organization"), user,
        lookup={"pk": str(workflow_id)}, not_found=f"Workflow {workflow_id} not found.",
    )


def workflow_usable_by(workflow: Workflow, user) -> bool:
    """Whether ``user`` may use ``workflow``: schedule it, trigger or re-run it,
    or have it run for their job. A run uses the owner's encrypted secrets, so
    seeing the workflow (an organization member does) is not enough: it takes
    its owner, or the owner's sharing it with its organization. Superusers
    (and SYSTEM) operate every workflow."""
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    if user.is_superuser:
        return True
    if workflow.owner_id is not None and workflow.owner_id == user.pk:
        return True
    return bool(workflow.shared_with_organization and workflow.organization_id is not None
                and workflow.organization_id in user_organization_ids(user))


def workflow_schedule_count(*, workflow: Workflow) -> int:
    return Job.objects.filter(kind=WORKFLOW_KIND, config__workflow_id=workflow.pk).count()


# ---------------------------------------------------------------------------
# Schedules: jobs of kind "workflow"
# ---------------------------------------------------------------------------
def schedule_job_name(*, user, job_id: str) -> str:
    """The core Job's name for ``user``'s seed job ``job_id``. Job.name is
    unique in the installation while seed-002 job ids are unique per user, so
    the name carries the owner's id; the seed's job_id itself is kept in
    ``Job.config["job_id"]`` (what the API shows and looks up)."""
    return f"wf-{user.pk}-{job_id}"


def _schedules() -> QuerySet[Job]:
    return Job.objects.filter(kind=WORKFLOW_KIND).select_related("owner", "periodic_task")


def schedule_list(*, user) -> QuerySet[Job]:
    """The caller's own workflow schedules (seed 002 "per-user job isolation")."""
    return _schedules().filter(owner=user).order_by("id") if getattr(user, "pk", None) else Job.objects.none()


def schedule_list_all(*, user) -> QuerySet[Job]:
    """Every workflow schedule ``user`` may see (superusers and SYSTEM: all)."""
    return scope_to_user(_schedules(), user).order_by("id")


def schedule_find(*, user, job_id: str) -> Job | None:
    """The caller's job ``job_id``, or None."""
    if not getattr(user, "pk", None):
        return None
    return _schedules().filter(name=schedule_job_name(user=user, job_id=job_id)).first()


def schedule_get(*, user, job_id: str, forbidden: str = "You don't have permission to access this job") -> Job:
    """The caller's job ``job_id``; 403 ``forbidden`` when only someone else
    has one by that id, 404 ``Job {job_id} not found`` when nobody has."""
    job = schedule_find(user=user, job_id=job_id)
    if job is not None:
        return job
    if _schedules().filter(config__job_id=str(job_id)).exists():
        raise Forbidden(forbidden)
    raise NotFound(f"Job {job_id} not found")


def schedule_executions(*, user, job: Job) -> QuerySet[Execution]:
    return core_selectors.execution_list(user=user, job=job)


# ---------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------
def run_list(*, user, workflow_id: str | None = None, status: str | None = None) -> QuerySet[Execution]:
    runs = core_selectors.execution_list(user=user, status=status).filter(job__kind=WORKFLOW_KIND)
    if workflow_id:
        runs = runs.filter(job__config__workflow_id=workflow_id)
    return runs


def run_get(*, user, execution_id) -> Execution:
    """One run of a workflow job that ``user`` may see (someone else's: 404)."""
    execution = core_selectors.execution_get(user=user, execution_id=execution_id)
    if execution.job.kind != WORKFLOW_KIND:
        raise NotFound(f"Execution {execution_id} is not a workflow run.")
    return execution
