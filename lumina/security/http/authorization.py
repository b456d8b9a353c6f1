"""``Authorized(action)``: a DRF permission class that asks ``authorize`` for the caller.

    permission_classes = [Authorized("security.audit.read")]
    permission_classes = [Authorized("memory.read", resource=lambda request, view:
                                     Resource("memory.space", view.kwargs["space_id"]))]

Anonymous callers get DRF's ``not_authenticated``; a session still waiting for its
second factor gets ``mfa_required``; a refusal is audited (``AccessDenied``) and
answered 403 ``permission_denied`` with the decision's reason.
"""

from __future__ import annotations

from collections.abc import Callable

from rest_framework import exceptions
from rest_framework.permissions import BasePermission

from lumina.security.http.actors import actor_of
from lumina.security.http.permissions import IsFullyAuthenticated
from lumina.security.services.authorization import require
from lumina.security.types import Resource

ResourceOf = Callable[..., Resource | None]


class _Authorized(BasePermission):
    action: str = ""
    resource_of: ResourceOf | None = None

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if not IsFullyAuthenticated().has_permission(request, view):
            raise exceptions.PermissionDenied(
                IsFullyAuthenticated.message, code=IsFullyAuthenticated.code
            )
        resource_of = type(self).resource_of
        resource = resource_of(request, view) if resource_of is not None else None
        require(actor_of(request), self.action, resource)
        return True


def Authorized(action: str, resource: ResourceOf | None = None) -> type[BasePermission]:
    """A permission class requiring ``action``; ``resource(request, view)`` names the object."""
    return type(
        f"Authorized[{action}]",
        (_Authorized,),
        {"action": action, "resource_of": staticmethod(resource) if resource else None},
    )
