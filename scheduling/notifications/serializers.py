"""Shapes of /api/v1/jobs/{id}/notifications (and its deliveries)."""
from rest_framework import serializers

from scheduling.notifications.models import Event, NotificationDelivery
from scheduling.serializers import PageQuerySerializer, PageSerializer, StrictInputSerializer


class DestinationSummarySerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.CharField()
    is_enabled = serializers.BooleanField()


class JobNotificationSettingsSerializer(serializers.Serializer):
    """A job's notification settings, defaults applied."""

    job_id = serializers.IntegerField(source="job.pk")
    on_failure = serializers.SerializerMethodField()
    on_recovery = serializers.SerializerMethodField()
    on_overdue = serializers.SerializerMethodField()
    destinations = serializers.SerializerMethodField(help_text="The job's own destinations (names).")
    include_defaults = serializers.BooleanField(help_text="Whether the global default destinations are notified too.")
    default_destinations = serializers.SerializerMethodField(help_text="NOTIFICATIONS_DEFAULT_DESTINATIONS.")
    effective_destinations = DestinationSummarySerializer(source="destinations", many=True,
                                                          help_text="Who is told, all enabled destinations counted once.")
    customised = serializers.BooleanField(help_text="False: the job follows the global defaults.")

    def get_on_failure(self, obj) -> bool:
        return Event.FAILURE in obj.events

    def get_on_recovery(self, obj) -> bool:
        return Event.RECOVERY in obj.events

    def get_on_overdue(self, obj) -> bool:
        return Event.OVERDUE in obj.events

    def get_destinations(self, obj) -> list[str]:
        return [d.name for d in obj.own_destinations]

    def get_default_destinations(self, obj) -> list[str]:
        return [d.name for d in obj.default_destinations]


class JobNotificationSettingsUpdateSerializer(StrictInputSerializer):
    read_only_keys = frozenset({"job_id", "default_destinations", "effective_destinations", "customised"})

    on_failure = serializers.BooleanField(required=False)
    on_recovery = serializers.BooleanField(required=False)
    on_overdue = serializers.BooleanField(required=False)
    destinations = serializers.ListField(child=serializers.CharField(max_length=100), required=False, max_length=50,
                                         help_text="Destination names; replaces the job's list.")
    include_defaults = serializers.BooleanField(required=False)


class NotificationDeliverySerializer(serializers.ModelSerializer):
    destination = serializers.CharField(source="destination.name")
    notification_id = serializers.UUIDField(source="notification.uuid")
    execution_id = serializers.IntegerField(source="notification.execution_id", allow_null=True)

    class Meta:
        model = NotificationDelivery
        fields = ["id", "notification_id", "event", "job_id", "execution_id", "destination", "attempt", "status",
                  "status_code", "error", "started_at", "finished_at"]
        read_only_fields = fields


class NotificationDeliveryPageSerializer(PageSerializer):
    items = NotificationDeliverySerializer(many=True)


class DeliveryListQuerySerializer(PageQuerySerializer):
    event = serializers.ChoiceField(choices=Event.choices, required=False)
    status = serializers.ChoiceField(choices=NotificationDelivery.Status.choices, required=False)
