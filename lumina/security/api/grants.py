"""Public interface: object permissions on objects that belong to people.

A context that keeps people's objects (the ui's documents) decides access through
``object_authorize`` / ``object_require`` and shares through ``object_grants_set``. The
rules, the same for every such context:

- roles do not open someone else's object, even a role holding the action: the object is
  open to its owner (every action), to holders of an object grant of the action on it
  (directly or through a group), and to holders of the context's ``manage`` permission;
- token scopes and policies apply as in ``authorize``;
- sharing needs ``share_action`` on the object, and nobody grants or takes away an action
  they do not hold there themselves.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable

from lumina.security.selectors import rbac as rbac_selectors
from lumina.security.services import rbac as rbac_services
from lumina.security.services.authorization import (
    object_authorize,
    object_holds,
    object_ids_granted,
    object_require,
)
from lumina.security.types import Actor, Resource

__all__ = [
    "ObjectGrant",
    "object_authorize",
    "object_grants",
    "object_grants_check",
    "object_grants_clear",
    "object_grants_set",
    "object_holds",
    "object_ids_granted",
    "object_require",
]


@dataclasses.dataclass(frozen=True)
class ObjectGrant:
    """One action granted on one object to a user (``principal_id`` is their id) or a
    group (its name); ``principal_label`` is the user's email or the group's name."""

    principal_type: str
    principal_id: str
    principal_label: str
    action: str
    resource_type: str
    resource_id: str


def _dto(grant: rbac_selectors.Grant) -> ObjectGrant:
    return ObjectGrant(
        principal_type=grant.principal_type,
        principal_id=grant.principal_id,
        principal_label=grant.principal_label,
        action=grant.action,
        resource_type=grant.resource_type,
        resource_id=grant.resource_id,
    )


def object_grants(*, resource_type: str, resource_id: str) -> tuple[ObjectGrant, ...]:
    """Every grant on one object, users' first."""
    return tuple(
        _dto(grant)
        for grant in rbac_selectors.grant_list(resource_type=resource_type, resource_id=resource_id)
    )


def object_grants_set(
    *,
    actor: Actor,
    principal: str,
    resource: Resource,
    actions: Iterable[str],
    among: Iterable[str],
    share_action: str,
    owner_id: uuid.UUID | None = None,
    manage: str | None = None,
) -> tuple[ObjectGrant, ...]:
    """Make ``principal``'s grants on ``resource`` exactly ``actions`` (of ``among``).

    ``principal`` is a user id or email, or ``group:<name>``. Raises
    ``PermissionDeniedError`` (audited) when the actor may not share the object or hand
    on an action, ``ApplicationError`` naming ``principal`` or ``actions`` for bad input.
    """
    grants = rbac_services.object_grants_set(
        actor=actor,
        principal=principal,
        resource=resource,
        actions=actions,
        among=among,
        share_action=share_action,
        owner_id=owner_id,
        manage=manage,
    )
    return tuple(_dto(grant) for grant in grants)


def object_grants_check(
    *,
    actor: Actor,
    principal: str,
    resource: Resource,
    actions: Iterable[str],
    among: Iterable[str],
    share_action: str,
    owner_id: uuid.UUID | None = None,
    manage: str | None = None,
) -> None:
    """Refuse, audited, what ``object_grants_set`` would refuse; call it before opening
    the transaction in which ``object_grants_set`` runs with the caller's own writes."""
    rbac_services.object_grants_check(
        actor=actor,
        principal=principal,
        resource=resource,
        actions=actions,
        among=among,
        share_action=share_action,
        owner_id=owner_id,
        manage=manage,
    )


def object_grants_clear(*, actor: Actor, resource_type: str, resource_id: str) -> int:
    """Remove every grant on an object its context has deleted; returns how many."""
    return rbac_services.object_grants_clear(
        actor=actor, resource_type=resource_type, resource_id=resource_id
    )
