"""Events about documents. They carry ids, titles and names, never the content.

Realtime edits are not events here (they are the document's update log); a version
restored, which appends an update, is.
"""

from __future__ import annotations

import dataclasses
import uuid

from lumina.kernel.events import IntegrationEvent

__all__ = [
    "DocumentCreated",
    "DocumentDeleted",
    "DocumentImported",
    "DocumentRenamed",
    "DocumentShared",
    "DocumentUnshared",
    "DocumentVersionCreated",
    "DocumentVersionRestored",
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class DocumentCreated(IntegrationEvent):
    name = "ui.DocumentCreated"
    version = 1

    document_id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    actor_id: uuid.UUID | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class DocumentRenamed(IntegrationEvent):
    name = "ui.DocumentRenamed"
    version = 1

    document_id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    previous_title: str
    actor_id: uuid.UUID | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class DocumentImported(IntegrationEvent):
    """Content loaded into a document from a file (``manage.py documents import``)."""

    name = "ui.DocumentImported"
    version = 1

    document_id: uuid.UUID
    owner_id: uuid.UUID
    seq: int
    actor_id: uuid.UUID | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class DocumentShared(IntegrationEvent):
    """``principal`` now holds ``permissions`` on the document (view/comment/edit, share)."""

    name = "ui.DocumentShared"
    version = 1

    document_id: uuid.UUID
    owner_id: uuid.UUID
    principal_type: str
    principal_id: str
    permission: str
    can_share: bool
    actor_id: uuid.UUID | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class DocumentUnshared(IntegrationEvent):
    """``principal`` no longer holds any permission on the document."""

    name = "ui.DocumentUnshared"
    version = 1

    document_id: uuid.UUID
    owner_id: uuid.UUID
    principal_type: str
    principal_id: str
    actor_id: uuid.UUID | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class DocumentVersionCreated(IntegrationEvent):
    name = "ui.DocumentVersionCreated"
    version = 1

    document_id: uuid.UUID
    version_id: uuid.UUID
    version_name: str
    upto_seq: int
    actor_id: uuid.UUID | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class DocumentVersionRestored(IntegrationEvent):
    """A version's content restored as a new update (``seq``): history is kept."""

    name = "ui.DocumentVersionRestored"
    version = 1

    document_id: uuid.UUID
    version_id: uuid.UUID
    version_name: str
    seq: int | None
    actor_id: uuid.UUID | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class DocumentDeleted(IntegrationEvent):
    name = "ui.DocumentDeleted"
    version = 1

    document_id: uuid.UUID
    owner_id: uuid.UUID
    grants_removed: int
    actor_id: uuid.UUID | None = None
