"""Whose usage, cost reports and budgets an actor may see.

Everyone sees their own; everyone's needs ``providers.usage.read_all`` (the Admin and
Owner roles), a permission of its own because ``providers.read`` (Developer, Viewer)
is about the catalogue, not about what other people spend. REST, the admin console and
the CLI all ask here.
"""

from __future__ import annotations

import uuid

from django.db.models import Q

from lumina.providers.models.usage import Budget
from lumina.security.api import Actor, authorize, require

READ_ALL = "providers.usage.read_all"


def sees_everyones_usage(actor: Actor) -> bool:
    return authorize(actor, READ_ALL).allowed


def usage_user_visible(actor: Actor, requested: uuid.UUID | None) -> uuid.UUID | None:
    """The user whose usage a request for ``requested`` (None: everyone) may show.

    Without ``READ_ALL`` that is the actor alone; asking for someone else is refused
    (``PermissionDeniedError``, audited).
    """
    if sees_everyones_usage(actor):
        return requested
    if requested is not None and requested != actor.user_id:
        require(actor, READ_ALL)
    return actor.user_id


def budget_visible_to(actor: Actor, *, scope: str, subject_id: uuid.UUID) -> bool:
    if sees_everyones_usage(actor):
        return True
    return (scope == Budget.Scope.USER and subject_id == actor.user_id) or (
        scope == Budget.Scope.TOKEN and subject_id == actor.token_id
    )


def budget_rows_visible(actor: Actor) -> Q:
    """A filter on ``Budget`` rows keeping those the actor may see."""
    if sees_everyones_usage(actor):
        return Q()
    mine = Q(pk__in=[])
    if actor.user_id is not None:
        mine |= Q(scope=Budget.Scope.USER, subject_id=actor.user_id)
    if actor.token_id is not None:
        mine |= Q(scope=Budget.Scope.TOKEN, subject_id=actor.token_id)
    return mine
