"""Admin console pages for roles and role assignments; every write goes through the services.

So the console obeys the same rules as the API: built-in roles keep their name and
permissions, patterns must match declared permissions, nobody hands on permissions they
do not hold, and each change is audited and reaches ``authorize``'s caches.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from lumina.kernel.errors import ApplicationError
from lumina.security.models.rbac import Role, RoleAssignment
from lumina.security.services import rbac as services
from lumina.security.services.authorization import authorize
from lumina.security.types import Actor


def admin_actor(request: HttpRequest) -> Actor:
    user = request.user
    is_verified = getattr(user, "is_verified", None)
    return Actor(
        user_id=user.pk,
        email=user.email,
        is_superuser=user.is_superuser,
        is_staff=user.is_staff,
        is_active=user.is_active,
        mfa_verified=bool(is_verified()) if callable(is_verified) else False,
        ip_address=request.META.get("REMOTE_ADDR"),
    )


def may_manage(request: HttpRequest, permission: str) -> bool:
    user = request.user
    if not (user.is_active and user.is_staff):
        return False
    return user.is_superuser or authorize(admin_actor(request), permission).allowed


def add_errors(form: forms.BaseForm, error: ApplicationError) -> None:
    """Show a service's refusal on the form, field by field where it names fields."""
    if not error.fields:
        form.add_error(None, error.message)
    for field, messages in error.fields.items():
        form.add_error(field if field in form.fields else None, messages)


class _ManagedAdmin(admin.ModelAdmin):
    permission = services.MANAGE

    def has_module_permission(self, request: HttpRequest) -> bool:
        return may_manage(request, self.permission)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return may_manage(request, self.permission)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return may_manage(request, self.permission)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return may_manage(request, self.permission)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return may_manage(request, self.permission)

    def get_actions(self, request: HttpRequest) -> dict:
        # The bulk delete action would bypass the services.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


class RoleForm(forms.ModelForm):
    request: HttpRequest

    class Meta:
        model = Role
        fields = ("name", "description", "permissions", "requires_mfa")
        help_texts = {
            "permissions": "Comma-separated patterns: 'providers.read', 'memory.*', '*.read', '*'."
        }

    def clean(self) -> dict:
        data = super().clean()
        role = self.instance
        actor = admin_actor(self.request)
        try:
            if "name" in data and not role.built_in:
                data["name"] = services.role_name_validate(data["name"])
            if not role._state.adding:
                services.role_hand_on_check(actor, role.permissions, what="this role")
            if "permissions" in data and not role.built_in:
                data["permissions"] = services.role_permissions_validate(data["permissions"])
                services.role_hand_on_check(actor, data["permissions"], what="this role")
        except ApplicationError as error:
            add_errors(self, error)
        return data


@admin.register(Role)
class RoleAdmin(_ManagedAdmin):
    form = RoleForm
    list_display = ("name", "built_in", "requires_mfa", "pattern_list", "updated_at")
    list_filter = ("built_in", "requires_mfa")
    search_fields = ("name", "description")
    ordering = ("name",)

    @admin.display(description="permissions")
    def pattern_list(self, role: Role) -> str:
        return ", ".join(role.permissions)

    def get_readonly_fields(self, request: HttpRequest, obj: Role | None = None) -> tuple:
        if obj is not None and obj.built_in:
            return ("name", "permissions", "built_in", "created_at", "updated_at")
        return ("built_in", "created_at", "updated_at")

    def get_form(self, request: HttpRequest, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"request": request})

    def has_delete_permission(self, request: HttpRequest, obj: Role | None = None) -> bool:
        if obj is not None and obj.built_in:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Role, form, change: bool) -> None:
        actor = admin_actor(request)
        data = form.cleaned_data
        if not change:
            created = services.role_create(
                actor=actor,
                name=data["name"],
                description=data.get("description", ""),
                permissions=data["permissions"],
                requires_mfa=data.get("requires_mfa", False),
            )
            obj.pk = created.pk
            return
        services.role_update(
            actor=actor,
            role_id=obj.pk,
            name=data.get("name"),
            description=data.get("description"),
            permissions=data.get("permissions"),
            requires_mfa=data.get("requires_mfa"),
        )

    def delete_model(self, request: HttpRequest, obj: Role) -> None:
        services.role_delete(actor=admin_actor(request), role_id=obj.pk)


class RoleAssignmentForm(forms.ModelForm):
    request: HttpRequest

    class Meta:
        model = RoleAssignment
        fields = ("role", "user", "group")

    def clean(self) -> dict:
        data = super().clean()
        if (data.get("user") is None) == (data.get("group") is None):
            raise forms.ValidationError("Choose either a user or a group.")
        role = data.get("role")
        if role is not None:
            try:
                services.role_hand_on_check(
                    admin_actor(self.request), role.permissions, what=f"role {role.name}"
                )
            except ApplicationError as error:
                add_errors(self, error)
        return data


@admin.register(RoleAssignment)
class RoleAssignmentAdmin(_ManagedAdmin):
    """Assignments are added or removed, never edited."""

    form = RoleAssignmentForm
    list_display = ("role", "user", "group", "created_at", "created_by")
    list_filter = ("role",)
    list_select_related = ("role", "user", "group", "created_by")
    search_fields = ("role__name", "user__email", "group__name")
    autocomplete_fields = ("user",)
    ordering = ("-created_at",)

    def get_form(self, request: HttpRequest, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"request": request})

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> tuple:
        if obj is not None:
            return ("role", "user", "group", "created_at", "created_by")
        return ()

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: RoleAssignment, form, change: bool) -> None:
        data = form.cleaned_data
        user, group = data.get("user"), data.get("group")
        created = services.role_assignment_create(
            actor=admin_actor(request),
            role=str(data["role"].pk),
            user=str(user.pk) if user is not None else None,
            group=group.name if group is not None else None,
        )
        obj.pk = created.pk

    def delete_model(self, request: HttpRequest, obj: RoleAssignment) -> None:
        services.role_assignment_delete(actor=admin_actor(request), assignment_id=obj.pk)
