"""Admin console page for the audit log: read-only, filterable, searchable by actor."""

from django.contrib import admin

from lumina.security.models.audit import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("sequence", "occurred_at", "action", "outcome", "actor_id", "target",
                    "ip_address")  # fmt: skip
    list_filter = ("action", "outcome")
    search_fields = ("=actor_id", "target")
    ordering = ("-sequence",)
    readonly_fields = [field.name for field in AuditEntry._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
