from django.urls import path

from scheduling.notifications import apis

urlpatterns = [
    path("api/v1/jobs/<str:job_id>/notifications", apis.JobNotificationSettingsApi.as_view(),
         name="job-notifications"),
    path("api/v1/jobs/<str:job_id>/notifications/deliveries", apis.JobNotificationDeliveryListApi.as_view(),
         name="job-notification-deliveries"),
]
