"""MFA device pages for support: who has what, never a key or a code.

The admin console's second factor itself is the site's (``lumina.security.admin_site``).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from lumina.kernel.errors import ApplicationError
from lumina.security.api.actors import actor_of
from lumina.security.api.admin import AdminPermissions, ReadOnlyAdmin, admin_may
from lumina.security.models.mfa import BackupCodesDevice, TotpDevice
from lumina.security.services import mfa as services
from lumina.security.services.users import MANAGE, user_credentials_require

# --- Device pages for support: who has what, never a key or a code --------------------


class DeviceAdmin(ReadOnlyAdmin):
    # Removal goes through the audited reset action.
    permissions = AdminPermissions(view=MANAGE)
    list_display = ("user", "name", "confirmed", "created_at", "last_used_at", "failures")
    list_filter = ("confirmed",)
    search_fields = ("user__email",)
    list_select_related = ("user",)
    ordering = ("user__email",)
    actions = ("reset_mfa",)
    fields = ("user", "name", "confirmed", "created_at", "last_used_at", "failures")
    readonly_fields = fields

    @admin.display(description="failed attempts")
    def failures(self, device) -> int:
        return device.throttling_failure_count

    def has_reset_permission(self, request: HttpRequest) -> bool:
        return admin_may(request, MANAGE)

    @admin.action(
        description="Reset MFA of the selected devices' users (removes all their devices)",
        permissions=("reset",),
    )
    def reset_mfa(self, request: HttpRequest, queryset: QuerySet) -> None:
        actor = actor_of(request)
        users = {device.user for device in queryset.select_related("user")}
        done = 0
        for user in users:
            try:
                user_credentials_require(actor, user)
            except ApplicationError as error:
                self.message_user(request, f"{user.email}: {error.message}", messages.ERROR)
                continue
            services.mfa_reset(user=user, actor_id=actor.user_id)
            done += 1
        if done:
            self.message_user(request, f"MFA reset for {done} user(s).", messages.SUCCESS)


class TotpDeviceAdmin(DeviceAdmin):
    pass


class BackupCodesDeviceAdmin(DeviceAdmin):
    list_display = (*DeviceAdmin.list_display, "codes_remaining")
    fields = (*DeviceAdmin.fields, "codes_remaining")
    readonly_fields = fields

    def get_queryset(self, request) -> QuerySet:
        return super().get_queryset(request).annotate(remaining=Count("codes"))

    @admin.display(description="codes remaining", ordering="remaining")
    def codes_remaining(self, device) -> int:
        return device.remaining


for model, model_admin in (
    (TotpDevice, TotpDeviceAdmin),
    (BackupCodesDevice, BackupCodesDeviceAdmin),
):
    admin.site.register(model, model_admin)
