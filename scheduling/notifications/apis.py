"""/api/v1/jobs/{id}/notifications (GET, PUT, PATCH) and .../notifications/deliveries (GET).

Like the jobs API: whoever sees the job reads; superusers change."""
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

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
from scheduling.serializers import query_params, request_body


# One job's notification settings and delivery attempts, routed by
# scheduling/notifications/urls.py under the jobs API's paths. (No docstring:
# drf-spectacular would show it as every operation's description.)
class JobNotificationViewSet(viewsets.ViewSet):
    permission_classes = [IsAuthenticated]

    def _job(self):
        return core_selectors.job_get(user=self.request.user, job_id=self.kwargs["job_id"])

    @extend_schema(tags=["notifications"], summary="A job's notification settings",
                   responses={200: JobNotificationSettingsSerializer})
    def retrieve(self, request, job_id=None):
        job = self._job()
        return Response(JobNotificationSettingsSerializer(selectors.job_notification_settings_effective(job=job)).data)

    @extend_schema(tags=["notifications"], summary="Change a job's notification settings (partial)",
                   request=JobNotificationSettingsUpdateSerializer, responses={200: JobNotificationSettingsSerializer})
    def update(self, request, job_id=None):
        job = self._job()  # someone else's job: 404 before 403
        if not request.user.is_superuser:
            raise exceptions.PermissionDenied("Only superusers can create or modify jobs.")
        services.job_notification_settings_update(job=job, **request_body(JobNotificationSettingsUpdateSerializer,
                                                                          request))
        return Response(JobNotificationSettingsSerializer(selectors.job_notification_settings_effective(job=job)).data)

    partial_update = update

    @extend_schema(tags=["notifications"], summary="A job's notification delivery attempts",
                   parameters=[DeliveryListQuerySerializer], responses={200: NotificationDeliveryPageSerializer})
    def deliveries(self, request, job_id=None):
        job = self._job()
        params = query_params(DeliveryListQuerySerializer, request)
        page = paginate(selectors.delivery_list(user=request.user, job=job, event=params.get("event"),
                                                status=params.get("status")),
                        page=params["page"], size=params["size"])
        return Response(page.envelope(NotificationDeliverySerializer(page.items, many=True).data))
