"""Admin console pages for roles and role assignments; every write goes through the services.

So the console obeys the same rules as the API: built-in roles keep their name and
permissions, patterns must match declared permissions, nobody hands on permissions they
do not hold, and each change is audited and reaches ``authorize``'s caches.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth.models import Group
from django.http import HttpRequest

from lumina.kernel.errors import ApplicationError
from lumina.security.api.actors import actor_of
from lumina.security.api.admin import AdminPermissions, PermissionAdmin, add_errors
from lumina.security.models.rbac import Role, RoleAssignment
from lumina.security.services import rbac as services


class _ManagedAdmin(PermissionAdmin):
    permissions = AdminPermissions.full(services.MANAGE)
    bulk_delete = False


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
        actor = actor_of(self.request)
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
        actor = actor_of(request)
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
        services.role_delete(actor=actor_of(request), role_id=obj.pk)


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
                    actor_of(self.request), role.permissions, what=f"role {role.name}"
                )
            except ApplicationError as error:
                add_errors(self, error)
        return data


@admin.register(RoleAssignment)
class RoleAssignmentAdmin(_ManagedAdmin):
    """Assignments are added or removed, never edited."""

    permissions = AdminPermissions(
        view=services.MANAGE, add=services.MANAGE, delete=services.MANAGE
    )

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

    def save_model(self, request: HttpRequest, obj: RoleAssignment, form, change: bool) -> None:
        data = form.cleaned_data
        user, group = data.get("user"), data.get("group")
        created = services.role_assignment_create(
            actor=actor_of(request),
            role=str(data["role"].pk),
            user=str(user.pk) if user is not None else None,
            group=group.name if group is not None else None,
        )
        obj.pk = created.pk

    def delete_model(self, request: HttpRequest, obj: RoleAssignment) -> None:
        services.role_assignment_delete(actor=actor_of(request), assignment_id=obj.pk)


# --- Groups: role holders by membership ------------------------------------------------


class GroupForm(forms.ModelForm):
    class Meta:
        model = Group
        # Django's model permissions grant nothing in Lumina: roles do.
        fields = ("name",)


class GroupAdmin(_ManagedAdmin):
    """Groups hold roles (role assignments), so managing them is managing roles."""

    form = GroupForm
    search_fields = ("name",)
    ordering = ("name",)

    def may_manage(self, request: HttpRequest, obj: Group) -> bool:
        # Deleting a group takes its roles from its members: the rule of unassigning them.
        actor = actor_of(request)
        return not any(
            services.role_hand_on_missing(actor, assignment.role.permissions)
            for assignment in obj.role_assignments.select_related("role")
        )


if admin.site.is_registered(Group):
    admin.site.unregister(Group)
admin.site.register(Group, GroupAdmin)
