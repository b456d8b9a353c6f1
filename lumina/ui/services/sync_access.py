"""Who may open and who may edit a document over the sync socket.

The same rules as the REST API (``selectors.document_access``): ``documents.read`` on the
document to connect and receive, ``documents.edit`` for one's updates to be accepted.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from lumina.security.api import Actor
from lumina.ui.selectors.document_access import EDIT, READ, document_row, may


@dataclass(frozen=True, slots=True)
class SyncAccess:
    exists: bool  # False: no such live document
    read: bool
    edit: bool


def sync_access(actor: Actor, *, document_id: uuid.UUID) -> SyncAccess:
    document = document_row(document_id)
    if document is None:
        return SyncAccess(exists=False, read=False, edit=False)
    if not may(actor, READ, document):
        return SyncAccess(exists=True, read=False, edit=False)
    return SyncAccess(exists=True, read=True, edit=may(actor, EDIT, document))
