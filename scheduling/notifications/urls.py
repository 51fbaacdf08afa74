"""Routes of the notifications app: per-job paths under the jobs API
(scheduling/urls.py includes this module at the root when the app is installed).

A route whose actions read a body names its parsers here, as a router does
for an ``@action(parser_classes=...)``."""
from django.urls import path

from jobsite.parsers import StrictJSONParser
from scheduling.notifications.apis import JobNotificationViewSet

urlpatterns = [
    path("api/v1/jobs/<str:job_id>/notifications",
         JobNotificationViewSet.as_view({"get": "retrieve", "put": "update", "patch": "partial_update"},
                                        parser_classes=[StrictJSONParser]),
         name="job-notifications"),
    path("api/v1/jobs/<str:job_id>/notifications/deliveries", JobNotificationViewSet.as_view({"get": "deliveries"}),
         name="job-notification-deliveries"),
]
