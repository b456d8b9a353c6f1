"""What every context's admin pages share: access decided by ``authorize`` alone.

An admin page declares the Lumina permission each kind of access needs
(``AdminPermissions``); ``PermissionAdmin`` and ``PermissionInline`` answer Django's
``has_*_permission`` questions by asking ``authorize`` for the request's actor. Being
staff only opens the admin console (the site checks it); it grants nothing, and
neither do Django's model permissions (``user_permissions``, ``has_perm``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from lumina.kernel.errors import ApplicationError
from lumina.security.api.actors import actor_of
from lumina.security.services.authorization import authorize
from lumina.security.types import Resource

__all__ = [
    "AdminPermissions",
    "PermissionAdmin",
    "PermissionInline",
    "ReadOnlyAdmin",
    "add_errors",
    "admin_may",
]


@dataclasses.dataclass(frozen=True)
class AdminPermissions:
    """The permission each kind of access needs; None means nobody, superusers included."""

    view: str | None = None
    add: str | None = None
    change: str | None = None
    delete: str | None = None

    @classmethod
    def full(cls, permission: str) -> AdminPermissions:
        """One permission for every kind of access."""
        return cls(view=permission, add=permission, change=permission, delete=permission)

    def named(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p for p in (self.view, self.add, self.change, self.delete) if p))


def admin_may(
    request: HttpRequest, permission: str | None, resource: Resource | None = None
) -> bool:
    """Whether the request's actor holds ``permission`` (never when it is None)."""
    if permission is None:
        return False
    return authorize(actor_of(request), permission, resource).allowed


class _PermissionMapped:
    """``has_*_permission`` from ``permissions``; ``may_manage`` adds per-object rules."""

    permissions = AdminPermissions()

    def may_manage(self, request: HttpRequest, obj: Any) -> bool:
        """Whether this object may be changed or deleted by the request's actor at all."""
        return True

    def has_module_permission(self, request: HttpRequest) -> bool:
        return any(admin_may(request, name) for name in self.permissions.named())

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return admin_may(request, self.permissions.view) or self.has_change_permission(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return admin_may(request, self.permissions.add)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if not admin_may(request, self.permissions.change):
            return False
        return obj is None or self.may_manage(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if not admin_may(request, self.permissions.delete):
            return False
        return obj is None or self.may_manage(request, obj)


class PermissionAdmin(_PermissionMapped, admin.ModelAdmin):
    """A ModelAdmin whose pages need the Lumina permissions in ``permissions``."""

    # Django's bulk delete calls delete_queryset, not delete_model: pages whose deletes
    # go through a service and do not override delete_queryset turn it off.
    bulk_delete = True

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        if not self.bulk_delete:
            actions.pop("delete_selected", None)
        return actions


class ReadOnlyAdmin(PermissionAdmin):
    """A list and detail pages to look at (``permissions.view``), nothing more."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PermissionInline(_PermissionMapped):
    """Mix into ``admin.TabularInline`` / ``StackedInline``: same rules as the page's."""


def add_errors(form: forms.BaseForm, error: ApplicationError) -> None:
    """Show a service's refusal on the form, field by field where it names fields."""
    if not error.fields:
        form.add_error(None, error.message)
    for field, messages in error.fields.items():
        form.add_error(field if field in form.fields else None, messages)
