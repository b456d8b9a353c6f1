"""Who may do what on a document: the owner, people it is shared with, managers.

Documents are people's private data, so a role does not open someone else's document,
not even a role holding ``documents.read`` (Viewer) or ``documents.edit`` (Developer):
security's object rules decide (``security.api.object_authorize``). A document is open
to its owner (every permission), to whoever it is shared with (the permissions of the
share, directly or through a group), and to holders of ``documents.manage`` (Admin and
Owner roles). A document the caller may not read is answered as if it did not exist.
"""

from __future__ import annotations

import dataclasses
import uuid

from lumina.security.api import (
    Actor,
    Resource,
    object_authorize,
    object_ids_granted,
    object_require,
)
from lumina.ui.errors import DocumentNotFoundError
from lumina.ui.models import Document

RESOURCE_TYPE = "ui.document"
READ = "documents.read"
COMMENT = "documents.comment"
EDIT = "documents.edit"
SHARE = "documents.share"
MANAGE = "documents.manage"
# What can be granted on one document, weakest first.
ACTIONS = (READ, COMMENT, EDIT, SHARE)
# A share's permission and the actions it grants (each includes the weaker ones).
LEVELS: dict[str, tuple[str, ...]] = {
    "view": (READ,),
    "comment": (READ, COMMENT),
    "edit": (READ, COMMENT, EDIT),
}


def resource_of(document: Document) -> Resource:
    # The owner as an attribute, for policies ("unless resource.owner_id == principal.id").
    return Resource(
        type=RESOURCE_TYPE, id=str(document.id), attributes={"owner_id": str(document.owner_id)}
    )


def _rules(document: Document) -> dict:
    return {"owner_id": document.owner_id, "manage": MANAGE}


def may(actor: Actor, action: str, document: Document) -> bool:
    return object_authorize(actor, action, resource_of(document), **_rules(document)).allowed


def permissions_of(actor: Actor, document: Document) -> tuple[str, ...]:
    """The document permissions ``actor`` holds on ``document``, weakest first."""
    return tuple(action for action in ACTIONS if may(actor, action, document))


def document_row(document_id: uuid.UUID) -> Document | None:
    """The live (not deleted) document, whoever asks."""
    return Document.objects.filter(id=document_id, deleted_at__isnull=True).first()


def document_visible(*, actor: Actor, document_id: uuid.UUID) -> Document:
    """The document if ``actor`` may read it; ``DocumentNotFoundError`` otherwise."""
    document = document_row(document_id)
    if document is None or not may(actor, READ, document):
        raise DocumentNotFoundError(document_id)
    return document


def document_for(*, actor: Actor, document_id: uuid.UUID, action: str) -> Document:
    """The document for ``action``: not readable is a 404, readable but not allowed a 403
    (audited)."""
    document = document_visible(actor=actor, document_id=document_id)
    if action != READ:
        object_require(actor, action, resource_of(document), **_rules(document))
    return document


@dataclasses.dataclass(frozen=True)
class Reach:
    """What a caller can reach in a listing: their own, what is shared with them by
    permission, and whether they manage everyone's."""

    user_id: uuid.UUID | None
    # The permissions the caller's credentials allow on its own documents (a token's scopes).
    own: tuple[str, ...]
    shared: dict[str, frozenset[str]]
    manages: bool

    def permissions(self, document: Document) -> tuple[str, ...]:
        if self.manages or document.owner_id == self.user_id:
            return self.own
        return tuple(a for a in ACTIONS if str(document.id) in self.shared.get(a, frozenset()))


def reach_of(actor: Actor) -> Reach:
    """Four queries at most, whatever the number of documents listed.

    Listing needs ``documents.read`` as the owner of one's documents would (an API token
    without that scope is refused, audited).
    """
    anything = Resource(type=RESOURCE_TYPE)
    object_require(actor, READ, anything, owner_id=actor.user_id)
    own = tuple(
        action
        for action in ACTIONS
        if object_authorize(actor, action, anything, owner_id=actor.user_id).allowed
    )
    shared = {action: object_ids_granted(actor, action, RESOURCE_TYPE) for action in ACTIONS}
    manages = object_authorize(actor, READ, anything, manage=MANAGE).allowed
    return Reach(user_id=actor.user_id, own=own, shared=shared, manages=manages)
