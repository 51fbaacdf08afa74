"""Admin: destinations (the secret is write-only, a "Send test" button on
each), per-job settings, and the record of what was sent and every delivery
attempt (read-only)."""
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_POST

from jobsite.admin.base import ObjectToolsMixin, ReadOnlyAdminMixin
from jobsite.admin.widgets import OpsMedia
from scheduling.notifications import services
from scheduling.notifications.models import Destination, JobNotificationSettings, Notification, NotificationDelivery


class DestinationForm(forms.ModelForm):
    url = forms.URLField(required=False, max_length=1000, assume_scheme="https",
                         help_text=Destination._meta.get_field("url").help_text)
    new_secret = forms.CharField(
        required=False, strip=True, widget=forms.PasswordInput(render_value=False),
        label="Signing secret", help_text="Webhooks: the HMAC-SHA256 key. Stored encrypted, never shown; "
                                          "leave empty to keep the current one.",
    )
    clear_secret = forms.BooleanField(required=False, help_text="Remove the stored secret (webhooks go unsigned).")

    class Meta:
        model = Destination
        fields = ["name", "kind", "url", "email_to", "is_enabled"]

    def save(self, commit=True):
        destination = super().save(commit=False)
        if self.cleaned_data.get("clear_secret"):
            services.destination_set_secret(destination=destination, secret="")
        elif self.cleaned_data.get("new_secret"):
            services.destination_set_secret(destination=destination, secret=self.cleaned_data["new_secret"])
        if commit:
            destination.save()
        return destination


@admin.register(Destination)
class DestinationAdmin(ObjectToolsMixin, admin.ModelAdmin):
    form = DestinationForm
    change_form_template = "admin/notifications/destination/change_form.html"

    class Media(OpsMedia):
        pass
    list_display = ["name", "kind", "target", "has_secret", "is_enabled", "updated_at"]
    list_filter = ["kind", "is_enabled"]
    search_fields = ["name", "url", "email_to"]

    @admin.display(description="Sends to")
    def target(self, obj):
        return obj.url if obj.kind == Destination.Kind.WEBHOOK else obj.email_to

    @admin.display(boolean=True, description="Signed")
    def has_secret(self, obj):
        return bool(obj.secret)

    # -- the "Send test" button ------------------------------------------------
    def tool_urls(self):
        return [("<path:object_id>/send-test/", self.send_test_view, "notifications_destination_send_test")]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_send_test": self.has_change_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    @method_decorator(require_POST)
    def send_test_view(self, request, object_id):
        destination = self.tool_object(request, object_id)
        if not self.has_change_permission(request, destination):
            raise PermissionDenied
        result = self.tool_call(request, lambda: services.destination_send_test(destination=destination,
                                                                                 actor=request.user),
                                refused="Test not sent: ")
        if result is not None:
            delivered, outcome = result
            self.message_user(request, f"Test to {destination.name} {outcome}.",
                              messages.SUCCESS if delivered else messages.ERROR)
        return self.back_to(destination)


@admin.register(JobNotificationSettings)
class JobNotificationSettingsAdmin(admin.ModelAdmin):
    list_display = ["job", "on_failure", "on_recovery", "on_overdue", "include_defaults", "updated_at"]
    list_filter = ["on_failure", "on_recovery", "on_overdue"]
    search_fields = ["job__name"]
    raw_id_fields = ["job"]
    filter_horizontal = ["destinations"]


class ReadOnlyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    deletable = True  # an operator may clear old records


class DeliveryInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = NotificationDelivery
    fields = ["destination", "attempt", "status", "status_code", "error", "started_at", "finished_at"]
    readonly_fields = fields
    extra = 0


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "event", "job", "execution"]
    list_filter = ["event"]
    search_fields = ["job__name"]
    readonly_fields = ["uuid", "event", "job", "execution", "payload", "created_at"]
    inlines = [DeliveryInline]


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["started_at", "event", "job", "destination", "attempt", "status", "status_code", "short_error"]
    list_filter = ["status", "event", "destination"]
    search_fields = ["job__name", "destination__name", "error"]
    list_select_related = ["job", "destination"]
    readonly_fields = ["notification", "destination", "event", "job", "attempt", "status", "status_code", "error",
                       "started_at", "finished_at"]

    @admin.display(description="Error")
    def short_error(self, obj):
        return (obj.error[:80] + "…") if len(obj.error) > 80 else obj.error
