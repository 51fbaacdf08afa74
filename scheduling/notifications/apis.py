"""/api/v1/jobs/{id}/notifications (GET, PUT) and .../notifications/deliveries (GET).

Like the jobs API: whoever sees the job reads; superusers change."""
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from jobsite.parsers import StrictJSONParser
from scheduling import selectors as core_selectors
from scheduling.notifications import selectors, services
from scheduling.notifications.serializers import (
    DeliveryListQuerySerializer,
    JobNotificationSettingsSerializer,
    JobNotificationSettingsUpdateSerializer,
    NotificationDeliveryPageSerializer,
    NotificationDeliverySerializer,
)
from scheduling.pagination import paginate


def _job(request, job_id):
    return core_selectors.job_get(user=request.user, job_id=job_id)


class JobNotificationSettingsApi(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [StrictJSONParser]

    @extend_schema(tags=["notifications"], summary="A job's notification settings",
                   responses={200: JobNotificationSettingsSerializer})
    def get(self, request, job_id):
        job = _job(request, job_id)
        return Response(JobNotificationSettingsSerializer(selectors.job_notification_settings_effective(job=job)).data)

    @extend_schema(tags=["notifications"], summary="Change a job's notification settings (partial)",
                   request=JobNotificationSettingsUpdateSerializer, responses={200: JobNotificationSettingsSerializer})
    def put(self, request, job_id):
        job = _job(request, job_id)  # someone else's job: 404 before 403
        if not request.user.is_superuser:
            raise exceptions.PermissionDenied("Only superusers can create or modify jobs.")
        serializer = JobNotificationSettingsUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.job_notification_settings_update(job=job, **serializer.validated_data)
        return Response(JobNotificationSettingsSerializer(selectors.job_notification_settings_effective(job=job)).data)

    patch = put


class JobNotificationDeliveryListApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(tags=["notifications"], summary="A job's notification delivery attempts",
                   parameters=[DeliveryListQuerySerializer], responses={200: NotificationDeliveryPageSerializer})
    def get(self, request, job_id):
        job = _job(request, job_id)
        query = DeliveryListQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        params = query.validated_data
        page = paginate(selectors.delivery_list(job=job, event=params.get("event"), status=params.get("status")),
                        page=params["page"], size=params["size"])
        return Response(page.envelope(NotificationDeliverySerializer(page.items, many=True).data))
