"""The project's own models in the admin (organizations, external
identities). The pieces every app's admin shares are in ``widgets`` (what a
page shows) and ``base`` (read-only admins, refreshing lists, buttons and
actions that call services)."""
from django.contrib import admin
from django.db.models import Count

from jobsite.admin.base import ReadOnlyAdminMixin
from jobsite.models import ExternalIdentity, Membership, Organization

# The product's name on every admin page, not "Django administration".
admin.site.site_header = "jobsite"
admin.site.site_title = "jobsite"
admin.site.index_title = "Operations"


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "member_count", "created_at"]
    search_fields = ["name"]
    readonly_fields = ["id", "created_at"]
    inlines = [MembershipInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_member_count=Count("memberships"))

    @admin.display(description="Members", ordering="_member_count")
    def member_count(self, obj) -> int:
        return obj._member_count


@admin.register(ExternalIdentity)
class ExternalIdentityAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: identities are created by the first valid external token;
    editing one would move an external login onto another user."""

    list_display = ["user", "issuer", "subject", "created_at"]
    list_filter = ["issuer"]
    search_fields = ["user__username", "user__email", "subject"]
    list_select_related = ["user"]
    readonly_fields = ["user", "issuer", "subject", "created_at"]
