"""The ui context's public interface: the only module other contexts may import.

Plain functions and frozen dataclasses; never models or querysets. Every call is made
as an ``Actor`` and sees what that actor may see (security's object rules).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

from lumina.security.api import Actor
from lumina.ui.errors import DocumentNotFoundError
from lumina.ui.models import Document
from lumina.ui.selectors.document_access import (
    document_visible,
    permissions_of,
    reach_of,
)
from lumina.ui.selectors.documents import document_list
from lumina.ui.services import document_state
from lumina.ui.services.exports import FORMATS, export_of, render_text

__all__ = [
    "FORMATS",
    "DocumentDTO",
    "DocumentNotFoundError",
    "document_export",
    "document_get",
    "document_text",
    "documents_for_user",
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
