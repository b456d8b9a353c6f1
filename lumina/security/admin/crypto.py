"""Admin console page for data keys: a read-only list; wrapped key bytes are never shown."""

from django.contrib import admin

from lumina.security.api.admin import AdminPermissions, ReadOnlyAdmin
from lumina.security.models.crypto import DataKey


@admin.register(DataKey)
class DataKeyAdmin(ReadOnlyAdmin):
    # Never deletable here: deleting a data key shreds a secret, which only its owner's
    # context may do.
    permissions = AdminPermissions(view="security.keys.read")
    list_display = ("id", "owner", "kek_version", "created_at", "rotated_at")
    list_filter = ("kek_version",)
    search_fields = ("owner",)
    fields = ("id", "owner", "kek_version", "created_at", "rotated_at")
    readonly_fields = fields
    ordering = ("-created_at",)
