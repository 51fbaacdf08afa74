"""Run control's own endpoints. /api/v1/maintenance: pause-all (maintenance mode);
/api/v1/concurrency-groups: limits shared by jobs.

GET lists the pauses in force; POST pauses the whole site, one organization or
one queue (superusers); POST .../resume ends them, and each job they covered is
caught up per its catch-up policy (``scheduling.services.pause_all``)."""
from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.response import Response

from jobsite.models import Organization
from jobsite.parsers import StrictJSONParser
from jobsite.tenancy import user_organization_ids
from scheduling.maintenance_mode import active_pauses, pause_in_words
from scheduling.models import ConcurrencyGroup, MaintenancePause
from scheduling.pagination import list_envelope
from scheduling.serializers import ErrorSerializer, StrictInputSerializer, request_body
from scheduling.services.limits import concurrency_group_set
from scheduling.services.pause_all import maintenance_pause, maintenance_resume


class MaintenancePauseSerializer(serializers.ModelSerializer):
    organization_id = serializers.UUIDField(allow_null=True)
    description = serializers.SerializerMethodField(help_text="The pause in words, as the admin's banner says it.")

    class Meta:
        model = MaintenancePause
        fields = ["id", "scope", "organization_id", "queue", "reason", "started_at", "until", "ended_at",
                  "created_by", "description"]
        read_only_fields = fields

    def get_description(self, pause: MaintenancePause) -> str:
        return pause_in_words(pause)


class MaintenancePauseListSerializer(serializers.Serializer):
    items = MaintenancePauseSerializer(many=True)
    total = serializers.IntegerField()


class MaintenancePauseInputSerializer(StrictInputSerializer):
    scope = serializers.ChoiceField(choices=MaintenancePause.Scope.choices, default=MaintenancePause.Scope.SITE)
    organization_id = serializers.PrimaryKeyRelatedField(
        source="organization", queryset=Organization.objects.all(), pk_field=serializers.UUIDField(),
        required=False, allow_null=True, help_text="The organization to pause (scope organization).")
    queue = serializers.CharField(max_length=64, required=False, default="", allow_blank=True,
                                  help_text="The queue to pause (scope queue).")
    until = serializers.DateTimeField(required=False, allow_null=True, help_text="When it ends by itself (ISO 8601).")
    reason = serializers.CharField(max_length=255, required=False, default="", allow_blank=True)


class MaintenanceResumeInputSerializer(StrictInputSerializer):
    id = serializers.IntegerField(required=False, min_value=1, help_text="The pause to end (default: every one).")


class IsSuperuserToChange(BasePermission):
    message = "Only superusers can pause or resume the site."

    def has_permission(self, request, view) -> bool:
        return request.method == "GET" or bool(request.user and request.user.is_superuser)


class EnvelopeSchema(AutoSchema):
    """``list`` answers ``{"items": [...], "total": n}``, not the bare array
    drf-spectacular assumes for an action named list (as scheduling.apis does)."""

    def _is_list_view(self, serializer=None) -> bool:
        return False


class MaintenanceViewSet(viewsets.ViewSet):
    """Pause-all (maintenance mode): while a pause is on, no job it covers fires, and run requests are
    refused (409) unless forced; at its end each job's catch-up policy decides what runs, and every fire
    not run is recorded `missed`."""

    permission_classes = [IsAuthenticated, IsSuperuserToChange]
    parser_classes = [StrictJSONParser]
    schema = EnvelopeSchema()

    @extend_schema(tags=["jobs"], summary="Pauses in force",
                   responses={200: MaintenancePauseListSerializer})
    def list(self, request):
        pauses = active_pauses()
        if not request.user.is_superuser:
            orgs = set(user_organization_ids(request.user))
            pauses = [p for p in pauses if p.scope != MaintenancePause.Scope.ORGANIZATION or p.organization_id in orgs]
        return Response(list_envelope(MaintenancePauseSerializer(pauses, many=True).data))

    @extend_schema(tags=["jobs"], summary="Pause the site, an organization or a queue",
                   request=MaintenancePauseInputSerializer,
                   responses={201: MaintenancePauseSerializer, 400: ErrorSerializer,
                              403: OpenApiResponse(ErrorSerializer, description="Not a superuser.")})
    def create(self, request):
        data = request_body(MaintenancePauseInputSerializer, request)
        pause = maintenance_pause(scope=data["scope"], organization=data.get("organization"), queue=data["queue"],
                                  until=data.get("until"), reason=data["reason"], actor=request.user)
        return Response(MaintenancePauseSerializer(pause).data, status=status.HTTP_201_CREATED)

    @extend_schema(tags=["jobs"], summary="Resume (end pauses, catch up per job)",
                   request=MaintenanceResumeInputSerializer,
                   responses={200: MaintenancePauseListSerializer, 400: ErrorSerializer, 403: ErrorSerializer,
                              404: ErrorSerializer})
    @action(detail=False, methods=["post"])
    def resume(self, request):
        data = request_body(MaintenanceResumeInputSerializer, request)
        pauses = None
        if "id" in data:
            pauses = list(MaintenancePause.objects.filter(pk=data["id"], ended_at__isnull=True))
            if not pauses:
                return Response({"detail": f"No pause {data['id']} is in force."}, status=status.HTTP_404_NOT_FOUND)
        ended = maintenance_resume(pauses=pauses, actor=request.user)
        return Response(list_envelope(MaintenancePauseSerializer(ended, many=True).data))


# ---------------------------------------------------------------------------
# /api/v1/concurrency-groups: limits shared by several jobs
# ---------------------------------------------------------------------------
class ConcurrencyGroupSerializer(serializers.ModelSerializer):
    name = serializers.CharField(help_text="How jobs name the group (their concurrency_group).")
    jobs = serializers.SerializerMethodField(help_text="Names of the jobs in the group.")

    class Meta:
        model = ConcurrencyGroup
        fields = ["id", "name", "max_runs", "description", "jobs"]
        read_only_fields = fields

    def get_jobs(self, group: ConcurrencyGroup) -> list[str]:
        return [job.name for job in group.jobs.all()]


class ConcurrencyGroupListSerializer(serializers.Serializer):
    items = ConcurrencyGroupSerializer(many=True)
    total = serializers.IntegerField()


class ConcurrencyGroupInputSerializer(StrictInputSerializer):
    name = serializers.CharField(max_length=64, help_text="How jobs name the group (their concurrency_group).")
    max_runs = serializers.IntegerField(min_value=1, help_text="At most this many runs of the group's jobs at once.")
    description = serializers.CharField(max_length=255, required=False, default="", allow_blank=True)


class ConcurrencyGroupViewSet(viewsets.ViewSet):
    """Concurrency groups: one limit shared by several jobs ("at most 2 runs against the external document
    API at once, whatever job starts them"). A job joins one with its `concurrency_group` field; a run over
    the limit waits, queued, in order, and starts when a slot frees."""

    permission_classes = [IsAuthenticated, IsSuperuserToChange]
    parser_classes = [StrictJSONParser]
    schema = EnvelopeSchema()

    @extend_schema(tags=["jobs"], summary="Concurrency groups", responses={200: ConcurrencyGroupListSerializer})
    def list(self, request):
        groups = ConcurrencyGroup.objects.prefetch_related("jobs")
        return Response(list_envelope(ConcurrencyGroupSerializer(groups, many=True).data))

    @extend_schema(tags=["jobs"], summary="Create or change a concurrency group",
                   request=ConcurrencyGroupInputSerializer, responses={200: ConcurrencyGroupSerializer,
                                                                       400: ErrorSerializer, 403: ErrorSerializer})
    def create(self, request):
        data = request_body(ConcurrencyGroupInputSerializer, request)
        group = concurrency_group_set(name=data["name"], max_runs=data["max_runs"], description=data["description"],
                                      actor=request.user)
        return Response(ConcurrencyGroupSerializer(group).data)
