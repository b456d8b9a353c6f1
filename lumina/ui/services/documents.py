"""Documents: create, rename, delete, share.

Authorisation is security's object rules (``selectors.document_access``): checks happen
before any transaction opens, so a refusal's ``AccessDenied`` is not rolled back.
"""

from __future__ import annotations

import uuid

from django.db import transaction
from django.utils import timezone

from lumina.kernel.bus import publish
from lumina.kernel.errors import ApplicationError, NotFoundError
from lumina.security.api import (
    Actor,
    Resource,
    object_grants_check,
    object_grants_clear,
    object_grants_set,
    object_require,
    require,
    user_find,
)
from lumina.ui.events import (
    DocumentCreated,
    DocumentDeleted,
    DocumentRenamed,
    DocumentShared,
    DocumentUnshared,
)
from lumina.ui.models import Document
from lumina.ui.selectors.document_access import (
    ACTIONS,
    EDIT,
    LEVELS,
    MANAGE,
    RESOURCE_TYPE,
    SHARE,
    document_for,
    resource_of,
)
from lumina.ui.selectors.documents import document_shares

MAX_TITLE = 200


def _title(title: str) -> str:
    cleaned = title.strip()
    if not cleaned:
        raise ApplicationError("Give the document a title.", fields={"title": ["Required."]})
    if len(cleaned) > MAX_TITLE:
        raise ApplicationError(
            "The title is too long.", fields={"title": [f"At most {MAX_TITLE} characters."]}
        )
    return cleaned


def document_create(*, actor: Actor, title: str, owner_id: uuid.UUID | None = None) -> Document:
    """A new, empty document owned by the actor (``documents.edit`` lets one write
    documents: Developer, Admin). ``owner_id`` (another's) needs ``documents.manage``."""
    if owner_id is not None and owner_id != actor.user_id:
        object_require(actor, MANAGE, Resource(type=RESOURCE_TYPE), manage=MANAGE)
        if user_find(str(owner_id)) is None:
            raise ApplicationError("No such user.", fields={"owner_id": ["No such user."]})
    else:
        owner_id = actor.user_id
    if owner_id is None:
        raise ApplicationError("Give the owner.", fields={"owner_id": ["Required."]})
    # Writing documents at all is a role's (Developer, Admin): a share opens one document.
    require(actor, EDIT)
    title = _title(title)
    with transaction.atomic():
        document = Document.objects.create(title=title, owner_id=owner_id)
        publish(
            DocumentCreated(
                document_id=document.id, owner_id=owner_id, title=title, actor_id=actor.user_id
            )
        )
    return document


def document_rename(*, actor: Actor, document_id: uuid.UUID, title: str) -> Document:
    document = document_for(actor=actor, document_id=document_id, action=EDIT)
    title = _title(title)
    if title == document.title:
        return document
    previous = document.title
    with transaction.atomic():
        document.title = title
        document.save(update_fields=["title", "updated_at"])
        publish(
            DocumentRenamed(
                document_id=document.id,
                owner_id=document.owner_id,
                title=title,
                previous_title=previous,
                actor_id=actor.user_id,
            )
        )
    return document


def document_delete(*, actor: Actor, document_id: uuid.UUID) -> None:
    """Delete (softly: the history stays until purged) and take back every share.

    Only the owner or a manager: a share, even with ``documents.share``, does not let
    one delete.
    """
    document = document_for(actor=actor, document_id=document_id, action=SHARE)
    if actor.user_id != document.owner_id:
        object_require(actor, MANAGE, resource_of(document), manage=MANAGE)
    with transaction.atomic():
        document.deleted_at = timezone.now()
        document.save(update_fields=["deleted_at", "updated_at"])
        removed = object_grants_clear(
            actor=actor, resource_type=RESOURCE_TYPE, resource_id=str(document.id)
        )
        publish(
            DocumentDeleted(
                document_id=document.id,
                owner_id=document.owner_id,
                grants_removed=removed,
                actor_id=actor.user_id,
            )
        )


def level_of(actions: set[str] | frozenset[str]) -> str | None:
    """The share's permission (``view``/``comment``/``edit``) its actions amount to."""
    for level in ("edit", "comment", "view"):
        if set(LEVELS[level]) <= set(actions):
            return level
    return None


def document_share(
    *,
    actor: Actor,
    document_id: uuid.UUID,
    principal: str,
    permission: str | None,
    can_share: bool = False,
) -> tuple[Document, tuple]:
    """Share with a user (id or email) or ``group:<name>``: ``permission`` is view,
    comment or edit (None takes every permission back); ``can_share`` lets them share on.

    Needs ``documents.share`` on the document (owners and managers hold it); nobody hands
    on a permission they do not hold there themselves (security enforces both).
    """
    document = document_for(actor=actor, document_id=document_id, action=SHARE)
    if permission is not None and permission not in LEVELS:
        raise ApplicationError(
            "Unknown permission.", fields={"permission": ["One of view, comment, edit."]}
        )
    wanted = set(LEVELS[permission]) if permission else set()
    if can_share and permission is not None:
        wanted.add(SHARE)
    change = {
        "actor": actor,
        "principal": principal,
        "resource": resource_of(document),
        "actions": wanted,
        "among": ACTIONS,
        "share_action": SHARE,
        "owner_id": document.owner_id,
        "manage": MANAGE,
    }
    # Checked first, outside the transaction: a refusal's AccessDenied outlives it.
    object_grants_check(**change)
    with transaction.atomic():
        grants = object_grants_set(**change)
        if grants:
            first = grants[0]
            publish(
                DocumentShared(
                    document_id=document.id,
                    owner_id=document.owner_id,
                    principal_type=first.principal_type,
                    principal_id=first.principal_id,
                    permission=permission or "",
                    can_share=SHARE in wanted,
                    actor_id=actor.user_id,
                )
            )
    return document, grants


def document_unshare(
    *, actor: Actor, document_id: uuid.UUID, principal_type: str, principal_id: str
) -> None:
    """Take back every permission a share gave (``principal_type`` user or group)."""
    document = document_for(actor=actor, document_id=document_id, action=SHARE)
    shared = {(s["principal_type"], s["principal_id"]) for s in document_shares(document=document)}
    if (principal_type, principal_id) not in shared:
        raise NotFoundError(
            "The document is not shared with them.", fields={"principal": ["No such share."]}
        )
    reference = f"group:{principal_id}" if principal_type == "group" else f"user:{principal_id}"
    change = {
        "actor": actor,
        "principal": reference,
        "resource": resource_of(document),
        "actions": (),
        "among": ACTIONS,
        "share_action": SHARE,
        "owner_id": document.owner_id,
        "manage": MANAGE,
    }
    object_grants_check(**change)
    with transaction.atomic():
        object_grants_set(**change)
        publish(
            DocumentUnshared(
                document_id=document.id,
                owner_id=document.owner_id,
                principal_type=principal_type,
                principal_id=principal_id,
                actor_id=actor.user_id,
            )
        )
