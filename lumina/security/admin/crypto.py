"""Admin console page for data keys: a read-only list; wrapped key bytes are never shown."""

from django.contrib import admin

from lumina.security.models.crypto import DataKey


@admin.register(DataKey)
class DataKeyAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "kek_version", "created_at", "rotated_at")
    list_filter = ("kek_version",)
    search_fields = ("owner",)
    fields = ("id", "owner", "kek_version", "created_at", "rotated_at")
    readonly_fields = fields
    ordering = ("-created_at",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # deleting a data key shreds a secret: only its owner's context may
