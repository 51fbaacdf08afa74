"""Serializers of jobs as code (``POST /api/v1/jobs/apply``, scheduling.manifest),
backfills (``/api/v1/jobs/{id}/backfill``, ``/api/v1/backfills``) and calendars
(``/api/v1/calendars``): the jobs API's conventions (scheduling.serializers),
in a module of their own.
"""
from __future__ import annotations

from datetime import datetime

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobsite.models import Organization
from scheduling.models import Calendar, JobDependency
from scheduling.serializers import (
    JobCreateSerializer,
    JobSerializer,
    PageSerializer,
    StrictInputSerializer,
    TimeZoneNameField,
)


# ---------------------------------------------------------------------------
# Jobs as code (scheduling.manifest, POST /api/v1/jobs/apply)
# ---------------------------------------------------------------------------
class SecretRefsField(serializers.DictField):
    """``{NAME: {from_env: VAR}}``: secrets by reference, never their values.
    The value comes from the environment where the file is applied; an unset
    variable keeps the value stored under NAME."""

    default_error_messages = {
        "ref": "Give each secret as NAME: {from_env: VARIABLE}; a value does not belong in the file.",
    }

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        for name, ref in data.items():
            if (not isinstance(ref, dict) or set(ref) != {"from_env"} or not isinstance(ref["from_env"], str)
                    or not ref["from_env"].strip()):
                raise serializers.ValidationError({name: [self.error_messages["ref"]]})
        return {str(name): {"from_env": ref["from_env"].strip()} for name, ref in data.items()}


class ManifestRunAfterSerializer(StrictInputSerializer):
    """One job a job runs after (``PUT /api/v1/jobs/{id}/run-after``'s item), by name."""

    read_only_keys = frozenset({"job_id"})
    job = serializers.CharField(max_length=200, help_text="The upstream job's name (in the file or stored).")
    condition = serializers.ChoiceField(choices=JobDependency.Condition.choices, default=JobDependency.Condition.SUCCESS,
                                        help_text="success: after it succeeds; finished: after it ends, any outcome.")


class ManifestJobSerializer(JobCreateSerializer):
    """One job of a jobs-as-code file: the create body, plus ``paused``, the
    organization by name, secrets by reference, calendars and the jobs it runs
    after by name. ``concurrency_group`` is a name checked when the file is
    applied (the file's ``concurrency_groups:`` are created first)."""

    read_only_keys = frozenset(JobSerializer.Meta.fields) - {"organization_id"}
    organization_id = None
    organization = serializers.SlugRelatedField(
        slug_field="name", queryset=Organization.objects.all(), allow_null=True, required=False,
        help_text="The organization's name (null: none). Left out: kept, or the applier's on create.",
    )
    paused = serializers.BooleanField(required=False, help_text="true: the job keeps its schedule but does not fire.")
    secrets = SecretRefsField(required=False)
    calendars = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False,
        help_text="Names of the calendars whose days and hours the job skips.",
    )
    concurrency_group = serializers.CharField(
        max_length=64, required=False, allow_null=True,
        help_text="Name of a concurrency group (the file's concurrency_groups: or a stored one); null: none.",
    )
    run_after = ManifestRunAfterSerializer(
        many=True, required=False,
        help_text="The jobs this one runs after, by name: [{job: extract, condition: success}]. A cycle is refused.",
    )


class ManifestConcurrencyGroupSerializer(StrictInputSerializer):
    """One concurrency group of a jobs-as-code file (``concurrency_groups:``)."""

    read_only_keys = frozenset({"id", "jobs"})
    name = serializers.CharField(max_length=64)
    max_runs = serializers.IntegerField(min_value=1, help_text="At most this many runs of the group's jobs at once.")
    description = serializers.CharField(max_length=255, required=False, allow_blank=True)


class ApplyQuerySerializer(serializers.Serializer):
    dry_run = serializers.BooleanField(default=False, help_text="1: show the plan and check everything; change nothing.")
    prune = serializers.BooleanField(default=False, help_text="1: delete jobs and workflows the file does not list.")


class ApplyProblemSerializer(serializers.Serializer):
    file = serializers.CharField(help_text='The file ("request body" for the API).')
    section = serializers.CharField(help_text="calendars, workflows or jobs; empty for the file as a whole.")
    index = serializers.IntegerField(allow_null=True, help_text="The document's position in its section.")
    name = serializers.CharField(help_text="The document's name (its id, for a workflow).")
    field = serializers.CharField(help_text="The field at fault (empty: the document or file).")
    message = serializers.CharField()


class ApplyErrorSerializer(serializers.Serializer):
    """A file that cannot be applied: every problem, and nothing was changed."""

    detail = serializers.CharField(help_text="Every problem, one a line, each naming file, document and field.")
    errors = ApplyProblemSerializer(many=True)


class ApplyChangeSerializer(serializers.Serializer):
    section = serializers.CharField(help_text="jobs or workflows.")
    action = serializers.ChoiceField(choices=["create", "update", "delete"])
    name = serializers.CharField()
    fields = serializers.DictField(help_text="Field → [before, after] (updates); secrets by name only.")


class ApplyPlanSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField()
    applied = serializers.BooleanField()
    summary = serializers.DictField(child=serializers.IntegerField())
    changes = ApplyChangeSerializer(many=True)


# ---------------------------------------------------------------------------
# Backfill (POST /api/v1/jobs/{id}/backfill, /api/v1/backfills/{id})
# ---------------------------------------------------------------------------
@extend_schema_field({"type": "string", "example": "2026-03-01"})
class LocalDateTimeField(serializers.Field):
    """An ISO 8601 date or date-time. Without an offset it is read in the job's
    time zone (by the service), so "2026-03-01" means that day where the job runs."""

    default_error_messages = {"invalid": "Use an ISO 8601 date or date-time, e.g. 2026-03-01 or 2026-03-01T00:00+01:00."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        try:
            return datetime.fromisoformat(data.strip())
        except ValueError:
            self.fail("invalid")

    def to_representation(self, value):
        return value.isoformat()


class BackfillInputSerializer(StrictInputSerializer):
    read_only_keys = frozenset()
    start = LocalDateTimeField(help_text="First due time considered (included); no offset: the job's time zone.")
    end = LocalDateTimeField(help_text="End of the range (excluded); not in the future.")
    dry_run = serializers.BooleanField(default=False, help_text="true: list the due times and which already ran; run nothing.")


class BackfillDueTimeSerializer(serializers.Serializer):
    scheduled_for = serializers.DateTimeField()
    already_ran = serializers.BooleanField()
    execution_id = serializers.IntegerField(allow_null=True)
    status = serializers.CharField(allow_null=True)
    calendar = serializers.CharField(allow_null=True, help_text="The job's calendar this due time falls in: not run.")


class BackfillPreviewSerializer(serializers.Serializer):
    job_id = serializers.IntegerField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    total = serializers.IntegerField(help_text="Due times in the range.")
    to_run = serializers.IntegerField(help_text="Those without a run: what a backfill would run.")
    already_ran = serializers.IntegerField()
    skipped_by_calendar = serializers.IntegerField(help_text="Due times inside the job's calendars: not run.")
    due_times = BackfillDueTimeSerializer(many=True)


class BackfillRunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    scheduled_for = serializers.DateTimeField()
    status = serializers.CharField()


class BackfillSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    job_id = serializers.IntegerField()
    status = serializers.CharField(help_text="running, done or cancelled.")
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    total = serializers.IntegerField(help_text="Due times to run (those that already ran are not counted).")
    queued = serializers.IntegerField(help_text="How many have been queued so far (one at a time).")
    finished = serializers.IntegerField()
    not_run = serializers.IntegerField(help_text="Cancelled: how many were never queued.")
    already_ran = serializers.IntegerField(help_text="Due times in the range that already had a run.")
    current_execution_id = serializers.IntegerField(allow_null=True)
    runs = BackfillRunSerializer(many=True)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class ManifestCalendarSerializer(StrictInputSerializer):
    """One calendar of a jobs-as-code file (and the body of POST /api/v1/calendars/)."""

    read_only_keys = frozenset({"id", "created_at", "updated_at", "owner", "organization_id"})
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True)
    timezone = TimeZoneNameField(required=False)
    dates = serializers.ListField(child=serializers.CharField(max_length=10), required=False,
                                  help_text='Whole days: ["2026-12-24"].')
    date_ranges = serializers.ListField(child=serializers.DictField(child=serializers.CharField(max_length=10)),
                                        required=False, help_text='[{"start": "2026-12-24", "end": "2027-01-01"}], both included.')
    weekly_windows = serializers.ListField(child=serializers.DictField(), required=False,
                                           help_text='[{"day": 4, "start": "18:00", "end": "22:00"}] (0=Monday).')
    holidays_country = serializers.CharField(max_length=8, required=False, allow_blank=True, help_text="ISO code, e.g. DE.")
    holidays_subdivision = serializers.CharField(max_length=16, required=False, allow_blank=True, help_text="e.g. BY.")
    ical = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                 help_text="An iCalendar file's text: each event is a period skipped.")


class CalendarSerializer(serializers.ModelSerializer):
    """A calendar as the API shows it (``jobs``: the names of the jobs that skip it)."""

    organization_id = serializers.UUIDField(allow_null=True, read_only=True)
    jobs = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)

    class Meta:
        model = Calendar
        fields = ["id", "name", "description", "timezone", "dates", "date_ranges", "weekly_windows",
                  "holidays_country", "holidays_subdivision", "ical", "jobs", "organization_id", "created_at",
                  "updated_at"]
        read_only_fields = fields


class CalendarPageSerializer(PageSerializer):
    items = CalendarSerializer(many=True)


class JobCalendarsSerializer(StrictInputSerializer):
    read_only_keys = frozenset()
    calendars = serializers.ListField(child=serializers.CharField(max_length=200),
                                      help_text="Names of the calendars the job skips (replaces the list).")
