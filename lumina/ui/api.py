"""The ui context's public interface: the only module other contexts may import.

Plain functions and frozen dataclasses; never models or querysets. Every call is made
as an ``Actor`` and sees what that actor may see (security's object rules).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

from lumina.kernel.errors import NotFoundError
from lumina.security.api import Actor, require
from lumina.ui.errors import DocumentNotFoundError
from lumina.ui.models import Document
from lumina.ui.selectors.document_access import (
    document_visible,
    permissions_of,
    reach_of,
)
from lumina.ui.selectors.documents import document_list
from lumina.ui.selectors.visualization_templates import TEMPLATES as _TEMPLATES
from lumina.ui.selectors.visualizations import READ as _VIZ_READ
from lumina.ui.selectors.visualizations import visualization_get as _visualization_get
from lumina.ui.selectors.visualizations import visualization_list as _visualization_list
from lumina.ui.services import document_state
from lumina.ui.services.exports import FORMATS, export_of, render_text
from lumina.ui.services.visualizations import spec_render as _spec_render
from lumina.ui.vegalite import schema_version as vega_lite_version

__all__ = [
    "FORMATS",
    "DocumentDTO",
    "DocumentNotFoundError",
    "RenderedChart",
    "VisualizationDTO",
    "VisualizationTemplateDTO",
    "document_export",
    "document_get",
    "document_text",
    "documents_for_user",
    "template_render",
    "templates_list",
    "vega_lite_version",
    "visualization_get",
    "visualization_list",
    "visualization_render",
]


@dataclasses.dataclass(frozen=True)
class DocumentDTO:
    id: uuid.UUID
    title: str
    owner_id: uuid.UUID
    created_at: dt.datetime
    updated_at: dt.datetime
    # What the caller may do on it: documents.read, .comment, .edit, .share.
    permissions: tuple[str, ...]


def to_dto(document: Document, permissions: tuple[str, ...]) -> DocumentDTO:
    return DocumentDTO(
        id=document.id,
        title=document.title,
        owner_id=document.owner_id,
        created_at=document.created_at,
        updated_at=document.updated_at,
        permissions=permissions,
    )


def document_get(*, actor: Actor, document_id: uuid.UUID) -> DocumentDTO:
    """One document the actor may read; ``DocumentNotFoundError`` otherwise."""
    document = document_visible(actor=actor, document_id=document_id)
    return to_dto(document, permissions_of(actor, document))


def documents_for_user(
    *, actor: Actor, search: str | None = None, limit: int = 100
) -> list[DocumentDTO]:
    """The actor's own documents and those shared with it, last changed first."""
    reach = reach_of(actor)
    rows = document_list(reach=reach, search=search)[: max(1, min(limit, 1000))]
    return [to_dto(row, reach.permissions(row)) for row in rows]


def document_text(*, actor: Actor, document_id: uuid.UUID) -> str:
    """The document's content as plain text (text roots and ProseMirror/TipTap blocks)."""
    document = document_visible(actor=actor, document_id=document_id)
    return render_text(document_state.state_load(document.id))


def document_export(*, actor: Actor, document_id: uuid.UUID, output: str) -> str:
    """The document as ``text``, ``markdown`` or ``json`` (see ``FORMATS``)."""
    document = document_visible(actor=actor, document_id=document_id)
    return export_of(document, output).body


# --- Visualizations ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class VisualizationDTO:
    id: uuid.UUID
    owner_id: uuid.UUID
    name: str
    description: str
    spec: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class VisualizationTemplateDTO:
    key: str
    name: str
    description: str
    spec: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class RenderedChart:
    """A spec vega-embed draws as it is: Lumina sources became named ``datasets``."""

    spec: dict[str, Any]
    rows: dict[str, int]
    truncated: tuple[str, ...]


def _dto(found: Any) -> VisualizationDTO:
    return VisualizationDTO(
        id=found.id,
        owner_id=found.owner_id,
        name=found.name,
        description=found.description,
        spec=found.spec,
        created_at=found.created_at,
        updated_at=found.updated_at,
    )


def visualization_list(*, actor: Actor) -> list[VisualizationDTO]:
    """The actor's charts (everyone's with ``visualizations.manage``), newest first."""
    return [_dto(found) for found in _visualization_list(actor=actor)[:500]]


def visualization_get(*, actor: Actor, visualization_id: uuid.UUID) -> VisualizationDTO:
    """A chart the actor may see; ``NotFoundError`` alike for a missing one and another's."""
    return _dto(_visualization_get(actor=actor, visualization_id=visualization_id))


def visualization_render(
    *, actor: Actor, visualization_id: uuid.UUID, filters: dict[str, Any] | None = None
) -> RenderedChart:
    """A saved chart with the rows the actor may see. ``filters``: days, since, until (ISO
    dates), user (id) — replacing the chart's own where its sources take them."""
    found = _visualization_get(actor=actor, visualization_id=visualization_id)
    return _rendered(_spec_render(found.spec, actor=actor, overrides=filters))


def templates_list(*, actor: Actor) -> list[VisualizationTemplateDTO]:
    """The built-in dashboard charts (cost by day, tokens by model, latency, errors …)."""
    require(actor, _VIZ_READ)
    return [
        VisualizationTemplateDTO(t.key, t.name, t.description, t.spec_copy())
        for t in _TEMPLATES.values()
    ]


def template_render(
    *, actor: Actor, key: str, filters: dict[str, Any] | None = None
) -> RenderedChart:
    """A built-in chart with the actor's data; ``NotFoundError`` for an unknown key."""
    require(actor, _VIZ_READ)
    template = _TEMPLATES.get(key)
    if template is None:
        raise NotFoundError(f"No template {key!r}.", fields={"key": ["No such template."]})
    return _rendered(_spec_render(template.spec_copy(), actor=actor, overrides=filters))


def _rendered(rendered: Any) -> RenderedChart:
    return RenderedChart(spec=rendered.spec, rows=rendered.rows, truncated=rendered.truncated)
