"""The scheduling core: every kind of work is a Job whose runs are Executions.

Job → (django-celery-beat PeriodicTask) → Execution → Celery task id → result.
Writes go through scheduling.services; reads through scheduling.selectors.
"""
import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from scheduling.kinds import DEFAULT_KIND, kind_choices
from scheduling.schedules import ScheduleType


class Job(models.Model):
    class JobType(models.TextChoices):
        # seed 003's list, plus the facade kinds so the job_type filter covers them
        DOCUMENT_CLEANUP = "document_cleanup", "Document cleanup"
        ANALYTICS_AGGREGATION = "analytics_aggregation", "Analytics aggregation"
        USER_ACTIVITY_DIGEST = "user_activity_digest", "User activity digest"
        SYSTEM_HEALTH_CHECK = "system_health_check", "System health check"
        DATABASE_MAINTENANCE = "database_maintenance", "Database maintenance"
        MCP_SERVER_HEALTH_CHECK = "mcp_server_health_check", "MCP server health check"
        VISION_ANALYSIS = "vision_analysis", "Vision analysis"
        WORKFLOW = "workflow", "Workflow"
        CUSTOM = "custom", "Custom"

    ScheduleType = ScheduleType

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"

    class State(models.TextChoices):
        """What a person is told: ``status`` and ``is_enabled`` read together."""

        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        DISABLED = "disabled", "Disabled"

    class OverlapPolicy(models.TextChoices):
        SKIP = "skip", "Skip while a run is going"
        ALLOW = "allow", "Allow concurrent runs"
        QUEUE = "queue", "Queue one run to start when the running one ends"
        REPLACE = "replace", "Cancel the running run and start the new one"

    class CatchUpPolicy(models.TextChoices):
        """What happens to runs that fell due while beat was down."""

        SKIP = "skip", "Skip them (record one 'missed' row)"
        ONCE = "once", "Run once now"
        ALL = "all", "Run each one (up to JOBS_CATCH_UP_MAX)"

    #: What job_update may change (and the audit trail records, with kind and
    #: status); everything else is fixed at creation or derived.
    EDITABLE_FIELDS = (
        "name", "title", "description", "job_type", "schedule_type", "schedule_expression", "timezone",
        "task_name", "task_args", "task_kwargs", "config", "queue", "priority", "timeout_seconds",
        "max_retries", "retry_backoff_seconds", "overlap_policy", "is_enabled", "organization", "catch_up_policy",
        "jitter_seconds", "max_concurrent_runs", "concurrency_group",
    )

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, help_text="A UUID: a vision cron job's job_id in /cron-jobs.")
    name = models.CharField(max_length=200, unique=True, help_text="Unique machine name (vision cron jobs get vision-<16 hex digits>); the CLI accepts it in place of the id.")
    title = models.CharField(max_length=255, blank=True, help_text="Human-readable name shown in lists; defaults to the name.")
    description = models.TextField(blank=True, help_text="What the job is for, for whoever is on call.")
    kind = models.CharField(
        max_length=32, choices=kind_choices, default=DEFAULT_KIND,
        help_text="Which executor runs the job (the registered job kinds).",
    )
    job_type = models.CharField(max_length=64, choices=JobType.choices, default=JobType.CUSTOM, help_text="Category for filters and statistics.")

    schedule_type = models.CharField(max_length=16, choices=ScheduleType.choices, help_text="How schedule_expression is read.")
    schedule_expression = models.CharField(max_length=255, blank=True, help_text="Interpreted according to schedule_type (empty for manual).")
    timezone = models.CharField(max_length=64, default="UTC", help_text="IANA time zone the schedule is read in.")

    task_name = models.CharField(max_length=255, blank=True, help_text="Allow-listed schedulable task (kind=task).")
    task_args = models.JSONField(default=list, blank=True, help_text="Positional arguments of the task (a JSON list).")
    task_kwargs = models.JSONField(default=dict, blank=True, help_text="Keyword arguments of every run; checked against the task's signature.")
    config = models.JSONField(default=dict, blank=True, help_text="Executor settings (non-secret).")
    secrets = models.TextField(blank=True, default="", help_text="Credentials, Fernet-encrypted (jobsite.crypto); never shown.")

    queue = models.CharField(max_length=64, default="default", help_text="Celery queue its runs are sent to (JOBS_QUEUES).")
    priority = models.PositiveSmallIntegerField(default=5, validators=[MinValueValidator(0), MaxValueValidator(9)], help_text="0 (lowest) – 9 (highest).")
    timeout_seconds = models.PositiveIntegerField(default=3600, validators=[MinValueValidator(1)], help_text="Soft time limit; the hard limit is a little later.")
    max_retries = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(20)], help_text="Failed runs are retried this many times (0-20).")
    retry_backoff_seconds = models.PositiveIntegerField(default=60, help_text="Delay before retry n is backoff × 2^(n-1).")
    overlap_policy = models.CharField(
        max_length=8, choices=OverlapPolicy.choices, default=OverlapPolicy.SKIP,
        help_text="What a scheduled fire does while an earlier run is still going.",
    )
    catch_up_policy = models.CharField(
        max_length=8, choices=CatchUpPolicy.choices, default=CatchUpPolicy.ONCE,
        help_text="What happens to runs that fell due while beat was down.",
    )
    jitter_seconds = models.PositiveIntegerField(
        default=0, validators=[MaxValueValidator(3600)],
        help_text="Start jitter: each scheduled run starts up to this many seconds after its due time, by an offset "
                  "derived from the job and the due time (0: on time).",
    )

    has_downstream = models.BooleanField(
        default=False, editable=False,
        help_text="Other jobs run after this one (kept by the services): only then does a run's end look for them.",
    )
    max_concurrent_runs = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="At most this many runs of the job at once (overlap policy allow); a run over it waits, queued, "
                  "in order. Empty: no limit.",
    )
    concurrency_group = models.ForeignKey(
        "scheduling.ConcurrencyGroup", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs",
        help_text="A limit shared with other jobs: at most the group's max_runs runs of all its jobs at once.",
    )
    is_enabled = models.BooleanField(default=True, help_text="Disabled jobs never fire on schedule.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE, help_text="Paused jobs keep their schedule but do not fire.")

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs",
        help_text="Who the job belongs to; they and their organization see it.",
    )
    organization = models.ForeignKey(
        "jobsite.Organization", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs",
        help_text="Members of this organization see and manage the job.",
    )
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="job", editable=False,
        help_text="The beat entry kept in step with this job (none for manual jobs).",
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_run_at = models.DateTimeField(
        null=True, blank=True,
        help_text="When a run was last queued: fired by beat, or triggered through the API, admin or CLI. "
                  "Not the time of last_status (that is last_finished_at).",
    )
    next_run_at = models.DateTimeField(null=True, blank=True, help_text="Next run computed from the schedule.")
    last_status = models.CharField(max_length=16, blank=True, help_text="Status of the last finished run.")
    last_finished_at = models.DateTimeField(
        null=True, blank=True,
        help_text="When the run whose outcome is last_status finished: written with last_status, so the two "
                  "always describe the same run (the API's last_status / last_run_at pair).",
    )

    total_runs = models.PositiveIntegerField(default=0, help_text="Finished runs (skipped fires not counted).")
    successful_runs = models.PositiveIntegerField(default=0, help_text="Runs that ended in success.")
    failed_runs = models.PositiveIntegerField(default=0, help_text="Runs that ended failed, timeout or error.")
    total_duration_seconds = models.FloatField(default=0.0, help_text="Sum of run durations, for the average.")

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["is_enabled", "status"], name="job_enabled_status"),
            models.Index(fields=["job_type"], name="job_type_idx"),
            models.Index(fields=["kind"], name="job_kind_idx"),
            models.Index(fields=["next_run_at"], name="job_next_run_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(priority__lte=9), name="job_priority_0_9"),
            models.CheckConstraint(condition=Q(timeout_seconds__gte=1), name="job_timeout_positive"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_schedulable(self) -> bool:
        return self.is_enabled and self.status == self.Status.ACTIVE

    @property
    def state(self) -> str:
        """Disabled wins over paused and active: a disabled job never fires."""
        return self.State.DISABLED if not self.is_enabled else self.status

    @classmethod
    def state_q(cls, state: str) -> Q:
        """The filter matching ``state``."""
        if state == cls.State.DISABLED:
            return Q(is_enabled=False)
        return Q(is_enabled=True, status=state)

    @property
    def success_rate(self) -> float:
        return round(100.0 * self.successful_runs / self.total_runs, 2) if self.total_runs else 0.0

    @property
    def average_duration_seconds(self) -> float | None:
        return round(self.total_duration_seconds / self.total_runs, 3) if self.total_runs else None


class Execution(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCESS = "success", "Success"
        FAILED = "failed", "Failed"
        TIMEOUT = "timeout", "Timeout"
        ERROR = "error", "Error"
        CANCELLED = "cancelled", "Cancelled"
        SKIPPED = "skipped", "Skipped (overlap)"
        MISSED = "missed", "Missed (beat was down)"

    # The status sets, defined once.
    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)
    FAILURE_STATUSES = (Status.FAILED, Status.TIMEOUT, Status.ERROR)
    #: Runs that really ran (or were stopped): what statistics count.
    COUNTED_STATUSES = (Status.SUCCESS, *FAILURE_STATUSES, Status.CANCELLED)
    FINISHED_STATUSES = (*COUNTED_STATUSES, Status.SKIPPED, Status.MISSED)

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        MANUAL = "manual", "Manual (admin)"
        API = "api", "API"
        CLI = "cli", "CLI"
        RETRY = "retry", "Retry"
        DEPENDENCY = "dependency", "After another job"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, help_text="Public id of the run.")
    # No index of its own: the composite indexes below lead with the job (every run written
    # maintains each index, and a run's claim and finish rewrite the entries of all of them).
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="executions", db_index=False,
                            help_text="The job this is a run of.")
    celery_task_id = models.CharField(  # unique: Meta.constraints (no LIKE index beside it)
        max_length=255, null=True, blank=True,
        help_text="Celery task id, assigned before sending; cancel revokes it.",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, help_text="Where the run is in its lifecycle.")
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.SCHEDULE, help_text="What started the run.")
    attempt = models.PositiveSmallIntegerField(default=1, help_text="1 for the first try, n for the (n-1)th retry.")
    # The three links below are empty on most runs: each is indexed where set only (Meta.indexes).
    retry_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries", db_index=False,
        help_text="The failed run this one retries.",
    )
    trigger_run = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="triggered_runs", db_index=False,
        help_text="The upstream job's run whose end started (or skipped) this one (run after another job).",
    )
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False,
        help_text="Who started it (empty: beat or a retry).",
    )
    override_kwargs = models.JSONField(default=dict, blank=True, help_text="Parameters given for this run, merged over the job's.")
    scheduled_for = models.DateTimeField(
        null=True, blank=True,
        help_text="The due time beat fired this run for (scheduled runs only); one run per job and due time.",
    )

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True, help_text="When a worker claimed it.")
    completed_at = models.DateTimeField(null=True, blank=True, help_text="When it reached a final status.")
    duration_seconds = models.FloatField(null=True, blank=True, help_text="Seconds from start to completion.")
    worker = models.CharField(max_length=255, blank=True, help_text="Worker hostname and pid that ran it.")

    output = models.TextField(blank=True, help_text="One-line summary of the outcome.")
    result = models.JSONField(null=True, blank=True, help_text="Structured result the executor returned.")
    error = models.TextField(blank=True, help_text="Why it failed, timed out or was cancelled.")
    traceback = models.TextField(blank=True, help_text="Traceback of an unhandled failure (size-capped, secrets redacted).")
    log = models.TextField(blank=True, help_text="Output and log lines captured during the run (size-capped, secrets redacted).")
    batch_id = models.CharField(max_length=64, null=True, blank=True, help_text="Vision batch this run produced, if any.")
    held = models.BooleanField(
        default=False,
        help_text="Queued but not sent: it waits for the job's running run to end (overlap policy 'queue') "
                  "or for a concurrency slot (max_concurrent_runs, concurrency group).",
    )
    did_nothing = models.BooleanField(
        default=False,
        help_text="The run succeeded and found no work (a poll with nothing new): its executor said so. "
                  "The admin's run list hides these unless asked.",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # the run history's keyset order (scheduling.pagination: newest first, then id) after
            # each filter of GET /api/v1/executions/ and a job's runs: none, job, status, job and
            # status. A page is an index range however deep its cursor, and no filter sorts its runs.
            models.Index(fields=["-created_at", "-id"], name="exec_created_id"),
            models.Index(fields=["job", "-created_at", "-id"], name="exec_job_created"),
            models.Index(fields=["status", "-created_at", "-id"], name="exec_status_idx"),
            models.Index(fields=["job", "status", "-created_at", "-id"], name="exec_job_status"),
            # the admin's run list hides the runs that did nothing by default: its page and its
            # (capped) count read this index, however many no-op polls there are between real runs
            models.Index(fields=["-created_at", "-id"], condition=Q(did_nothing=False), name="exec_did_something"),
            # the dashboard's runs per hour by outcome (scheduling.dashboard.runs_per_hour): an
            # index-only scan of the charted days, with the job for a member's tenancy join
            models.Index(fields=["created_at", "status", "job"], name="exec_created_status_job"),
            # the runs waiting to be started (run control): a handful at most
            models.Index(fields=["job", "created_at"], condition=Q(held=True), name="exec_held"),
            # the links, where set: a run's retries, the runs another run started, a user's runs
            # (and what a deleted run or user sets to NULL)
            models.Index(fields=["retry_of"], condition=Q(retry_of__isnull=False), name="exec_retry_of"),
            models.Index(fields=["trigger_run"], condition=Q(trigger_run__isnull=False), name="exec_trigger_run"),
            models.Index(fields=["triggered_by"], condition=Q(triggered_by__isnull=False), name="exec_triggered_by"),
        ]
        constraints = [
            # A fire is (job, due time): a duplicated or redelivered fire, or a
            # second beat, can never make a second run of it.
            models.UniqueConstraint(
                fields=["job", "scheduled_for"], condition=Q(scheduled_for__isnull=False), name="exec_one_run_per_fire",
            ),
            # The id a cancel revokes: one run each.
            models.UniqueConstraint(fields=["celery_task_id"], name="exec_celery_task_id_unique"),
        ]

    def __str__(self) -> str:
        return f"Run {self.pk} of {self.job.name} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES


class JobDependency(models.Model):
    """Run after another job: ``downstream`` runs once ``upstream``'s run for
    the same due time has succeeded (or finished, any outcome); with several
    upstreams, once every one has (``scheduling.services.dependencies``)."""

    class Condition(models.TextChoices):
        SUCCESS = "success", "After it succeeds"
        FINISHED = "finished", "After it finishes (any outcome)"

    downstream = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="upstream_links",
                                   help_text="The job that runs after.")
    upstream = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="downstream_links",
                                 help_text="The job it runs after.")
    condition = models.CharField(max_length=16, choices=Condition.choices, default=Condition.SUCCESS,
                                 help_text="What the upstream run must end with.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["downstream", "upstream"], name="uniq_job_dependency")]

    def __str__(self) -> str:
        return f"{self.downstream} after {self.upstream} ({self.condition})"

    def condition_label(self) -> str:
        return "once it succeeds" if self.condition == self.Condition.SUCCESS else "once it finishes"


class ConcurrencyGroup(models.Model):
    """A concurrency limit several jobs share ("at most 2 runs against the
    external document API at once, whatever job starts them")."""

    name = models.SlugField(max_length=64, unique=True, help_text="How jobs name the group.")
    max_runs = models.PositiveIntegerField(validators=[MinValueValidator(1)],
                                           help_text="At most this many runs of the group's jobs at once.")
    description = models.CharField(max_length=255, blank=True, help_text="What the limit protects.")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class MaintenancePause(models.Model):
    """Pause-all (maintenance mode): while a pause is on, nothing in its scope
    fires; at its end each job's catch-up policy decides what runs
    (``scheduling.maintenance_mode``)."""

    class Scope(models.TextChoices):
        SITE = "site", "The whole site"
        ORGANIZATION = "organization", "One organization"
        QUEUE = "queue", "One queue"

    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.SITE, help_text="What is paused.")
    organization = models.ForeignKey(
        "jobsite.Organization", null=True, blank=True, on_delete=models.CASCADE, related_name="+",
        help_text="The organization paused (scope organization).",
    )
    queue = models.CharField(max_length=64, blank=True, help_text="The queue paused (scope queue).")
    reason = models.CharField(max_length=255, blank=True, help_text="Why, as the banner and the refusals say it.")
    started_at = models.DateTimeField(help_text="When the pause began.")
    until = models.DateTimeField(null=True, blank=True, help_text="When it ends by itself (empty: at resume).")
    ended_at = models.DateTimeField(null=True, blank=True, help_text="When it ended (empty: on, or due to end).")
    created_by = models.CharField(max_length=150, blank=True, help_text="Who paused: a username, or 'cli'.")

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["ended_at"], name="pause_ended_idx")]

    def __str__(self) -> str:
        what = {"site": "the whole site", "organization": f"organization {self.organization_id}",
                "queue": f"queue {self.queue}"}[self.scope]
        return f"Maintenance pause of {what}"


class AuditLog(models.Model):
    """Who did what to which job or execution, and what changed."""

    class Action(models.TextChoices):
        CREATE = "create"
        UPDATE = "update"
        DELETE = "delete"
        PAUSE = "pause"
        RESUME = "resume"
        EXECUTE = "execute"
        CANCEL = "cancel"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The signed-in user who acted (empty for the CLI and the system).",
    )
    actor_label = models.CharField(max_length=150, blank=True, help_text="Username, or 'system' / 'cli'.")
    action = models.CharField(max_length=16, choices=Action.choices, help_text="What was done.")
    object_type = models.CharField(max_length=32, help_text="Kind of object acted on (job, execution, ...).")
    object_id = models.CharField(max_length=64, help_text="Its primary key.")
    object_repr = models.CharField(max_length=255, blank=True, help_text="Its name at the time.")
    changes = models.JSONField(default=dict, blank=True, help_text="Field → [before, after]; secrets are listed by name only.")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_object_idx")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action} {self.object_type}:{self.object_id}"


class DailyJobStatistics(models.Model):
    """Per-day execution statistics, written by the analytics_aggregation job."""

    day = models.DateField(help_text="The day (UTC) the runs were created on.")
    job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.CASCADE, related_name="daily_stats",
        help_text="Empty: the overall row across every job.",
    )
    runs = models.PositiveIntegerField(default=0, help_text="Finished runs that day.")
    successes = models.PositiveIntegerField(default=0, help_text="Runs that ended in success.")
    failures = models.PositiveIntegerField(default=0, help_text="Runs that ended failed, timeout or error.")
    average_duration_seconds = models.FloatField(null=True, blank=True, help_text="Mean run duration in seconds.")
    p95_duration_seconds = models.FloatField(null=True, blank=True, help_text="95th percentile (nearest rank) of run durations.")
    computed_at = models.DateTimeField(auto_now=True, help_text="When the analytics_aggregation job last wrote this row.")

    class Meta:
        ordering = ["-day"]
        verbose_name = "daily job statistics"
        verbose_name_plural = "daily job statistics"
        constraints = [
            models.UniqueConstraint(fields=["day", "job"], name="uniq_daily_job_stats"),
            # NULLs are distinct in unique constraints: the overall row needs its own.
            models.UniqueConstraint(fields=["day"], condition=Q(job=None), name="uniq_daily_overall_stats"),
        ]


# Backfills and calendars live in their own module (this one stays under 500 lines).
from scheduling.time_models import Backfill, Calendar  # noqa: E402, F401
