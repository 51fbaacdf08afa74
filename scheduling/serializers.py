"""Serializers of the jobs API (/api/v1/jobs, /api/v1/executions).

Input serializers check types and shapes only and hand ``validated_data`` —
already under the service's keyword names (``task_queue`` → ``queue``,
``timeout`` → ``timeout_seconds`` ...) — to scheduling.services, which owns the
business rules (schedules, allow-listed task names, queues). Output
serializers read stored columns only, so serializing a page of jobs costs no
query beyond the page itself.

Names are module-level and distinct: drf-spectacular names schema components
after the class, and other facades of the same jobs live in this project too.

``validated``, ``query_params`` and ``request_body`` are how every facade's
viewsets validate their input (docs/architecture.md, "API style").
"""
from __future__ import annotations

from collections.abc import Mapping

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobsite.db import MAX_ID
from jobsite.models import Organization
from scheduling.beat import schedule_description
from scheduling.models import ConcurrencyGroup, Execution, Job
from scheduling.pagination import (
    DEFAULT_PAGE_SIZE,
    ESTIMATE_KEPT_SECONDS,
    EXACT_TOTAL_UP_TO,
    MAX_PAGE_SIZE,
    InvalidCursor,
    decode_cursor,
)
from scheduling.selectors import job_is_overdue
from scheduling.services.jitter import MAX_JITTER_SECONDS


def _choice_field(choices, **kwargs) -> serializers.ChoiceField:
    """A ChoiceField whose error lists the valid values (DRF's does not)."""
    values = [value for value, _ in choices]
    return serializers.ChoiceField(
        choices=choices,
        error_messages={"invalid_choice": f'"{{input}}" is not a valid choice. Use one of: {", ".join(values)}.'},
        **kwargs,
    )


class TimeZoneNameField(serializers.CharField):
    """An IANA time zone name, as a JSON string. DRF's CharField turns the
    number 0 into "0"; a zone is a name, so anything but a string is refused
    here. Whether the name exists is the schedule parser's to say."""

    default_error_messages = {"invalid": "Must be a string: an IANA time zone name such as 'UTC' or 'Europe/Paris'."}

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("help_text", 'IANA name; default "UTC".')
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------
class JobRunSummarySerializer(serializers.Serializer):
    """Per-job counters kept up to date by the dispatcher (no query to read)."""

    total_runs = serializers.IntegerField()
    successful_runs = serializers.IntegerField()
    failed_runs = serializers.IntegerField()
    success_rate = serializers.FloatField(help_text="Percentage of finished runs that succeeded (0-100).")
    average_duration_seconds = serializers.FloatField(allow_null=True)


class JobSerializer(serializers.ModelSerializer):
    """A job as the jobs API (/api/v1/jobs) shows it. ``secrets`` is never part of it."""

    task_queue = serializers.CharField(source="queue")
    task_priority = serializers.IntegerField(source="priority", help_text="0 (lowest) - 9 (highest).")
    timeout = serializers.IntegerField(source="timeout_seconds", help_text="Soft time limit in seconds.")
    status = serializers.ChoiceField(
        source="state", choices=Job.State.choices,
        help_text="active, paused, or disabled (is_enabled false: never fires, whatever it was).",
    )
    schedule_description = serializers.SerializerMethodField()
    is_overdue = serializers.SerializerMethodField()
    owner = serializers.SerializerMethodField(help_text="Username of the job's owner.")
    organization_id = serializers.UUIDField(allow_null=True)
    last_status = serializers.SerializerMethodField(help_text="Status of the last finished run (null: none yet).")
    last_run_at = serializers.DateTimeField(
        source="last_finished_at", allow_null=True,
        help_text="When the run whose outcome is last_status finished (null: none yet). The two always describe "
                  "the same run: a run that is queued or running now changes neither until it ends.",
    )
    statistics = serializers.SerializerMethodField()
    concurrency_group = serializers.SlugRelatedField(
        slug_field="name", read_only=True, allow_null=True,
        help_text="The concurrency group the job shares a limit with (null: none).")

    class Meta:
        model = Job
        fields = [
            "id", "uuid", "name", "title", "description", "kind", "job_type",
            "schedule_type", "schedule_expression", "timezone", "schedule_description",
            "task_name", "task_args", "task_kwargs", "config", "task_queue", "task_priority",
            "timeout", "max_retries", "retry_backoff_seconds", "overlap_policy", "catch_up_policy", "jitter_seconds",
            "max_concurrent_runs", "concurrency_group",
            "is_enabled", "status", "is_overdue", "owner", "organization_id",
            "created_at", "updated_at", "last_run_at", "next_run_at", "last_status", "statistics",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_schedule_description(self, job: Job) -> str | None:
        return schedule_description(job)

    def get_is_overdue(self, job: Job) -> bool:
        return job_is_overdue(job)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_owner(self, job: Job) -> str | None:
        # selectors select_related("owner"): no query per job
        return job.owner.username if job.owner_id else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_last_status(self, job: Job) -> str | None:
        return job.last_status or None

    @extend_schema_field(JobRunSummarySerializer)
    def get_statistics(self, job: Job) -> dict:
        return {
            "total_runs": job.total_runs,
            "successful_runs": job.successful_runs,
            "failed_runs": job.failed_runs,
            "success_rate": job.success_rate,
            "average_duration_seconds": job.average_duration_seconds,
        }


class ExecutionSerializer(serializers.ModelSerializer):
    job_name = serializers.CharField(source="job.name")
    retry_of = serializers.IntegerField(source="retry_of_id", allow_null=True, help_text="The execution this one retries.")
    triggered_by = serializers.SerializerMethodField(help_text="Username of who started it (null: beat or a retry).")
    trigger_run = serializers.IntegerField(
        source="trigger_run_id", allow_null=True,
        help_text="The upstream job's run whose end started (or skipped) this one (trigger dependency).",
    )
    held = serializers.BooleanField(
        help_text="Queued and waiting, not sent: for the job's running run to end (overlap policy queue) or for a "
                  "concurrency slot; output says which.",
    )

    class Meta:
        model = Execution
        fields = [
            "id", "uuid", "job_id", "job_name", "celery_task_id", "status", "trigger", "attempt", "retry_of",
            "created_at", "started_at", "completed_at", "duration_seconds", "worker", "output", "result",
            "error", "traceback", "log", "batch_id", "scheduled_for", "triggered_by", "override_kwargs",
            "trigger_run", "held",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_triggered_by(self, execution: Execution) -> str | None:
        return execution.triggered_by.username if execution.triggered_by_id else None


class PageSerializer(serializers.Serializer):
    """The page envelope of every list (scheduling.pagination); subclasses add ``items``."""

    total = serializers.IntegerField()
    page = serializers.IntegerField()
    size = serializers.IntegerField()
    pages = serializers.IntegerField()


class JobPageSerializer(PageSerializer):
    items = JobSerializer(many=True)


class ExecutionPageSerializer(serializers.Serializer):
    """A page of the run history. Asked for by ``page`` (or neither): the page
    envelope, with ``total_estimated`` and ``next``. Asked for by ``cursor``:
    ``items``, ``size`` and ``next`` only (no count is made)."""

    items = ExecutionSerializer(many=True)
    total = serializers.IntegerField(
        required=False,
        help_text=f"Page answers only. Exact up to {EXACT_TOTAL_UP_TO:,} runs; above, the database's estimate "
                  "(total_estimated true), never below that number, kept for "
                  f"{ESTIMATE_KEPT_SECONDS} seconds for the same list. pages follows from it.",
    )
    total_estimated = serializers.BooleanField(required=False, help_text="Page answers only: total is an estimate.")
    page = serializers.IntegerField(required=False, help_text="Page answers only.")
    size = serializers.IntegerField()
    pages = serializers.IntegerField(required=False, help_text="Page answers only: from total.")
    next = serializers.CharField(
        allow_null=True,
        help_text="Cursor of the items after these (pass it as `cursor`); null on the last page. Newer runs "
                  "never shift it: following `next` repeats and skips nothing.",
    )


class JobOverdueListSerializer(serializers.Serializer):
    items = JobSerializer(many=True)
    total = serializers.IntegerField()


class DurationStatsSerializer(serializers.Serializer):
    total_runs = serializers.IntegerField()
    successful_runs = serializers.IntegerField()
    failed_runs = serializers.IntegerField()
    cancelled_runs = serializers.IntegerField()
    success_rate = serializers.FloatField()
    average_duration_seconds = serializers.FloatField(allow_null=True)
    p95_duration_seconds = serializers.FloatField(allow_null=True)


class JobStatisticsSerializer(DurationStatsSerializer):
    job_id = serializers.IntegerField()
    name = serializers.CharField()
    last_status = serializers.CharField(allow_null=True, help_text="Status of the last finished run (null: none yet).")
    last_run_at = serializers.DateTimeField(allow_null=True, help_text="When the run whose outcome is last_status finished.")
    next_run_at = serializers.DateTimeField(allow_null=True)


class JobCountsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    enabled = serializers.IntegerField()
    disabled = serializers.IntegerField()
    active = serializers.IntegerField()
    paused = serializers.IntegerField()
    overdue = serializers.IntegerField()


class ExecutionTotalsSerializer(DurationStatsSerializer):
    queued = serializers.IntegerField()
    running = serializers.IntegerField()


class JobTypeStatsSerializer(DurationStatsSerializer):
    job_type = serializers.CharField()
    jobs = serializers.IntegerField()
    enabled = serializers.IntegerField()


class JobStatsOverviewSerializer(serializers.Serializer):
    jobs = JobCountsSerializer()
    executions = ExecutionTotalsSerializer()
    last_24h = DurationStatsSerializer()
    by_job_type = JobTypeStatsSerializer(many=True)
    generated_at = serializers.DateTimeField()


class SchedulableTaskSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="Use as a job's task_name.")
    description = serializers.CharField()
    default_queue = serializers.CharField()


class SchedulableTaskListSerializer(serializers.Serializer):
    items = SchedulableTaskSerializer(many=True)
    total = serializers.IntegerField()


class ScheduleValidationSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    schedule_type = serializers.CharField()
    schedule_expression = serializers.CharField()
    timezone = serializers.CharField()
    description = serializers.CharField(required=False, help_text="Human-readable schedule (valid only).")
    next_runs = serializers.ListField(
        child=serializers.CharField(), required=False,
        help_text="The next 5 run times, ISO 8601 in the schedule's time zone (valid only).",
    )
    jitter_seconds = serializers.IntegerField(required=False, help_text="The start jitter asked about (if any).")
    calendars = serializers.ListField(
        child=serializers.CharField(), required=False,
        help_text="The calendars asked about (if any): next_runs are outside them.",
    )
    start_windows = serializers.ListField(
        child=serializers.DictField(child=serializers.CharField()), required=False,
        help_text='With jitter_seconds: each next run\'s start window, {"due": ..., "starts_by": ...} '
                  "(the run starts at a fixed offset in [due, starts_by)).",
    )
    error = serializers.CharField(required=False, help_text="Why the schedule is invalid, naming the field (invalid only).")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()), required=False,
        help_text="The same, as a field → messages map (invalid only).",
    )


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    """The project's error body (jobsite.exceptions.exception_handler)."""

    detail = serializers.CharField(help_text="Readable message; validation errors name the field.")
    code = serializers.CharField(required=False)
    errors = serializers.DictField(required=False, help_text="Validation errors by field.")


# ---------------------------------------------------------------------------
# Input
# ---------------------------------------------------------------------------
def validated(serializer_class, data, **kwargs) -> dict:
    """``data`` checked by ``serializer_class``, as a plain dict; a 400 naming
    the field otherwise."""
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def query_params(serializer_class, request) -> dict:
    """The request's query string, validated (one value per parameter)."""
    return validated(serializer_class, request.query_params.dict())


def request_body(serializer_class, request, **kwargs) -> dict:
    """The request's parsed body, validated."""
    return validated(serializer_class, request.data, **kwargs)


class StrictInputSerializer(serializers.Serializer):
    """Rejects body keys it does not know, naming them: a misspelt
    ``schedule_expresion`` must not be silently ignored."""

    read_only_keys: frozenset[str] = frozenset(JobSerializer.Meta.fields)

    def unknown_key_message(self, key: str) -> str:
        return "This field is read-only." if key in self.read_only_keys else "Unknown field."

    def input_errors(self, data: Mapping) -> dict[str, list[str]]:
        """Errors the fields cannot see on their own (reported with theirs)."""
        return {key: [self.unknown_key_message(key)] for key in data if key not in self.fields}

    def to_internal_value(self, data):
        unknown = self.input_errors(data) if isinstance(data, Mapping) else {}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if unknown and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**exc.detail, **unknown}) from None
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


class JobCreateSerializer(StrictInputSerializer):
    """The body of POST /api/v1/jobs/. ``source`` maps API names onto the service's."""

    name = serializers.CharField(max_length=200, help_text="Unique machine name.")
    title = serializers.CharField(max_length=255, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True)
    kind = serializers.CharField(max_length=32, required=False, help_text='Executor kind; default "task".')
    job_type = _choice_field(Job.JobType.choices, required=False)
    schedule_type = _choice_field(Job.ScheduleType.choices)
    schedule_expression = serializers.CharField(
        max_length=255, required=False, allow_blank=True,
        help_text="Read according to schedule_type; required for every type but manual.",
    )
    timezone = TimeZoneNameField(required=False)
    task_name = serializers.CharField(
        max_length=255, required=False, allow_blank=True,
        help_text="A schedulable task (GET /api/v1/jobs/tasks); required for kind task.",
    )
    task_args = serializers.ListField(child=serializers.JSONField(), required=False)
    task_kwargs = serializers.DictField(required=False)
    config = serializers.DictField(required=False, help_text="Executor settings (non-secret).")
    task_queue = serializers.CharField(source="queue", max_length=64, required=False)
    task_priority = serializers.IntegerField(source="priority", min_value=0, max_value=9, required=False)
    timeout = serializers.IntegerField(source="timeout_seconds", min_value=1, required=False, help_text="Seconds.")
    max_retries = serializers.IntegerField(min_value=0, max_value=20, required=False)
    retry_backoff_seconds = serializers.IntegerField(min_value=0, required=False)
    overlap_policy = _choice_field(Job.OverlapPolicy.choices, required=False)
    catch_up_policy = _choice_field(
        Job.CatchUpPolicy.choices, required=False, help_text='Runs missed while beat was down; default "once".',
    )
    jitter_seconds = serializers.IntegerField(
        min_value=0, max_value=MAX_JITTER_SECONDS, required=False,
        help_text="Start jitter: each scheduled run starts up to this many seconds after its due time (default 0). "
                  "The offset is the same on every beat and replay; scheduled_for stays the due time.",
    )
    max_concurrent_runs = serializers.IntegerField(
        min_value=1, required=False, allow_null=True,
        help_text="At most this many runs at once (overlap policy allow); a run over it waits, queued, in order. "
                  "null: no limit.",
    )
    concurrency_group = serializers.SlugRelatedField(
        slug_field="name", queryset=ConcurrencyGroup.objects.all(), required=False, allow_null=True,
        help_text="Name of a concurrency group (GET /api/v1/concurrency-groups): a limit shared with its other jobs.",
        error_messages={"does_not_exist": "No concurrency group named '{value}' (create it first: POST "
                                          "/api/v1/concurrency-groups)."},
    )
    is_enabled = serializers.BooleanField(required=False)
    organization_id = serializers.PrimaryKeyRelatedField(
        source="organization", queryset=Organization.objects.all(), pk_field=serializers.UUIDField(),
        allow_null=True, required=False, help_text="Default: the creator's first organization.",
    )

    def input_errors(self, data: Mapping) -> dict[str, list[str]]:
        errors = super().input_errors(data)
        if not self.partial and "schedule_expression" not in data and data.get("schedule_type") != "manual":
            errors["schedule_expression"] = [self.fields["schedule_expression"].error_messages["required"]]
        return errors


class JobUpdateSerializer(JobCreateSerializer):
    """PUT and PATCH alike take any subset of the create fields except ``kind``."""

    kind = None

    def unknown_key_message(self, key: str) -> str:
        if key == "kind":
            return "The kind of a job cannot be changed; create a new job instead."
        if key == "status":
            return "This field is read-only; use POST .../pause or .../resume."
        return super().unknown_key_message(key)


class JobExecuteSerializer(StrictInputSerializer):
    force = serializers.BooleanField(default=False, help_text="Run even if disabled, paused or already running.")
    override_kwargs = serializers.DictField(default=dict, help_text="Merged over the job's task_kwargs for this run.")


class ScheduleValidateInputSerializer(serializers.Serializer):
    schedule_type = serializers.CharField(max_length=32, help_text="cron, interval, daily, weekly, monthly or once.")
    schedule_expression = serializers.CharField(max_length=255)
    timezone = TimeZoneNameField(default="UTC")
    jitter_seconds = serializers.IntegerField(
        min_value=0, max_value=MAX_JITTER_SECONDS, default=0,
        help_text="A start jitter to preview: each run's start window is shown (start_windows).",
    )
    calendars = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, max_length=100,
        help_text="Names of calendars to skip: next_runs leaves out due times inside them (as a job listing them fires).",
    )


class PageQuerySerializer(serializers.Serializer):
    page = serializers.IntegerField(
        min_value=1, default=1, help_text="1-based page number.",
        error_messages={"invalid": "A valid integer is required.", "min_value": "Pages are numbered from 1."},
    )
    size = serializers.IntegerField(
        min_value=1, max_value=MAX_PAGE_SIZE, default=DEFAULT_PAGE_SIZE,
        help_text=f"Items per page (1-{MAX_PAGE_SIZE}).",
    )


class JobListQuerySerializer(PageQuerySerializer):
    status = _choice_field(Job.State.choices, required=False, allow_blank=True)
    is_enabled = serializers.BooleanField(required=False, help_text="true or false.")
    job_type = _choice_field(Job.JobType.choices, required=False, allow_blank=True)
    kind = serializers.CharField(required=False, allow_blank=True, max_length=32)
    search = serializers.CharField(required=False, allow_blank=True, max_length=200, help_text="In name, title, description.")
    overdue = serializers.BooleanField(required=False, help_text="true: only overdue jobs.")


class ExecutionListQuerySerializer(PageQuerySerializer):
    status = _choice_field(Execution.Status.choices, required=False, allow_blank=True)
    limit = serializers.IntegerField(
        min_value=1, max_value=MAX_PAGE_SIZE, required=False, help_text="Alias of size (as /cron-jobs takes it).",
    )
    cursor = serializers.CharField(
        required=False, max_length=200,
        help_text="The `next` of an earlier answer: the runs after it, at the cost of a first page however deep "
                  "(not with page). The filters are not in it: send the same ones again.",
    )

    def validate_cursor(self, value: str):
        try:
            return decode_cursor(value)
        except InvalidCursor as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def validate(self, attrs):
        if "limit" in attrs and "size" not in self.initial_data:
            attrs["size"] = attrs["limit"]
        if "cursor" in attrs and "page" in self.initial_data:
            raise serializers.ValidationError({"cursor": "Give cursor or page, not both."})
        return attrs


class AllExecutionsQuerySerializer(ExecutionListQuerySerializer):
    job_id = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False, help_text="Only this job's executions.")
