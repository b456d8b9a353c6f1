"""Visualization reads: whose charts an actor may see, and the built-in templates.

Charts are private to their owner; ``visualizations.manage`` sees everyone's. Someone
else's chart is a 404 alike whether it exists or not, so ids reveal nothing.
"""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from lumina.kernel.errors import NotFoundError
from lumina.security.api import Actor, Resource, authorize, require
from lumina.ui.models import Visualization

READ = "visualizations.read"
EDIT = "visualizations.edit"
MANAGE = "visualizations.manage"
RESOURCE = "ui.visualization"


class VisualizationNotFoundError(NotFoundError):
    def __init__(self, visualization_id: object) -> None:
        super().__init__(f"No visualization {visualization_id}.")


def sees_everyones(actor: Actor) -> bool:
    return authorize(actor, MANAGE).allowed


def visualization_list(*, actor: Actor, owner_id: uuid.UUID | None = None) -> QuerySet:
    """The actor's charts; another owner's (or everyone's, with ``owner_id`` None and the
    manage permission) only with ``visualizations.manage``."""
    require(actor, READ)
    rows = Visualization.objects.all()
    if owner_id is not None and owner_id != actor.user_id:
        require(actor, MANAGE)
        return rows.filter(owner_id=owner_id)
    if owner_id is None and sees_everyones(actor):
        return rows
    return rows.filter(owner_id=actor.user_id) if actor.user_id else rows.none()


def visualization_get(*, actor: Actor, visualization_id: uuid.UUID, action: str = READ):
    """The chart, if the actor may do ``action`` on it; a 404 for anyone else's."""
    require(actor, action)
    found = Visualization.objects.filter(id=visualization_id).first()
    if found is None:
        raise VisualizationNotFoundError(visualization_id)
    if found.owner_id != actor.user_id and not sees_everyones(actor):
        raise VisualizationNotFoundError(visualization_id)
    resource = Resource(RESOURCE, str(found.id), {"owner_id": str(found.owner_id)})
    if not authorize(actor, action, resource).allowed:
        # A policy forbids this one chart: as invisible as another's.
        raise VisualizationNotFoundError(visualization_id)
    return found
