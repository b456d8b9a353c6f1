"""Admin console page for the audit log: read-only, filterable, searchable by actor."""

from django.contrib import admin

from lumina.security.api.admin import AdminPermissions, ReadOnlyAdmin
from lumina.security.models.audit import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    permissions = AdminPermissions(view="security.audit.read")
    list_display = ("sequence", "occurred_at", "action", "outcome", "actor_id", "target",
                    "ip_address")  # fmt: skip
    list_filter = ("action", "outcome")
    search_fields = ("=actor_id", "target")
    ordering = ("-sequence",)
    readonly_fields = [field.name for field in AuditEntry._meta.fields]
