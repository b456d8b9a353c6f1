"""Admin console pages for users.

Seeing and changing users needs ``security.users.manage``; changing an account (its
password, email, active flag) also needs to outrank it (``user_takeover_refusal``), so
nobody takes over an account that holds more than they do. Only superusers hand out
staff or superuser status or group membership (groups carry roles); Django's model
permissions are not offered at all, because they grant nothing in Lumina.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import UserChangeForm, UserCreationForm
from django.http import HttpRequest

from lumina.security.api.actors import actor_of
from lumina.security.api.admin import AdminPermissions, PermissionAdmin
from lumina.security.models.users import User
from lumina.security.services.users import MANAGE, user_credentials_manageable


class UserCreateForm(UserCreationForm):
    class Meta:
        model = User
        fields = ("email",)


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = ("email", "password", "full_name", "is_active", "is_staff", "is_superuser",
                  "groups", "last_login", "date_joined")  # fmt: skip


@admin.register(User)
class UserAdmin(PermissionAdmin, BaseUserAdmin):
    permissions = AdminPermissions.full(MANAGE)
    # A bulk delete would skip the per-account rule: delete accounts one by one.
    bulk_delete = False
    form = UserEditForm
    add_form = UserCreateForm
    ordering = ("email",)
    list_display = ("email", "full_name", "is_staff", "is_active", "date_joined")
    list_filter = ("is_staff", "is_superuser", "is_active")
    search_fields = ("email", "full_name")
    readonly_fields = ("date_joined", "last_login")
    filter_horizontal = ("groups",)
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("full_name",)}),
        ("Access", {"fields": ("is_active", "is_staff", "is_superuser", "groups")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)

    def may_manage(self, request: HttpRequest, obj: User) -> bool:
        # Also guards the password page, which asks has_change_permission(request, user).
        return user_credentials_manageable(actor_of(request), obj)

    def get_readonly_fields(self, request: HttpRequest, obj: User | None = None):
        fields = super().get_readonly_fields(request, obj)
        if actor_of(request).is_superuser:
            return fields
        # Otherwise anyone allowed to change users could make themselves (or a friend)
        # staff or superuser: privileges are handed on by superusers and RBAC roles only.
        return (*fields, "is_staff", "is_superuser", "groups")
