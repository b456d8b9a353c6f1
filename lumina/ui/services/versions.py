"""Named versions of a document, and restoring one.

A version keeps the document's state as it was (up to an update's seq). Restoring one
never rewrites history: it appends a new update that turns the current content into the
version's, which reaches connected clients like any edit (``document_state``).

An editor's last keystrokes travel on its websocket while its "keep" or "restore" travels
on another connection, and may arrive first. So both take the caller's own copy of the
document (``state``: its whole Yjs state) and store what it holds that the database does
not yet before acting: the version keeps what the caller saw, and a restore replaces it.
"""

from __future__ import annotations

import uuid

from django.db import transaction
from pycrdt import Doc

from lumina.kernel.bus import publish
from lumina.kernel.errors import ApplicationError
from lumina.security.api import Actor
from lumina.ui.errors import ContentInvalidError, VersionNotFoundError
from lumina.ui.events import DocumentVersionCreated, DocumentVersionRestored
from lumina.ui.models import DocumentVersion
from lumina.ui.selectors.document_access import EDIT, document_for
from lumina.ui.selectors.documents import version_get
from lumina.ui.services import document_state
from lumina.ui.services.content import doc_of, missing_update, restore_update

MAX_NAME = 200


def version_create(
    *, actor: Actor, document_id: uuid.UUID, name: str, state: bytes | None = None
) -> DocumentVersion:
    """Keep the document's current state, with the caller's ``state`` in it, under
    ``name`` (``documents.edit``)."""
    document = document_for(actor=actor, document_id=document_id, action=EDIT)
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise ApplicationError(
            "Give the version a name.", fields={"name": [f"1–{MAX_NAME} characters."]}
        )
    copy = _copy_of(state)
    with transaction.atomic():
        _take_in(document.id, copy, actor)
        loaded = document_state.state_load_with_seq(document.id)
        version = DocumentVersion.objects.create(
            document=document,
            name=name,
            upto_seq=loaded.seq,
            state=loaded.state,
            created_by_id=actor.user_id,
        )
        publish(
            DocumentVersionCreated(
                document_id=document.id,
                version_id=version.id,
                version_name=name,
                upto_seq=loaded.seq,
                actor_id=actor.user_id,
            )
        )
    return version


def version_restore(
    *,
    actor: Actor,
    document_id: uuid.UUID,
    version_id: uuid.UUID,
    state: bytes | None = None,
) -> tuple[DocumentVersion, int]:
    """Make the content the version's again, as one new update, over whatever the caller's
    ``state`` holds too; (version, its seq)."""
    document = document_for(actor=actor, document_id=document_id, action=EDIT)
    version = version_get(document=document, version_id=version_id)
    if version is None:
        raise VersionNotFoundError(version_id)
    copy = _copy_of(state)
    with transaction.atomic():
        _take_in(document.id, copy, actor)
        current = document_state.state_load(document.id)
        update = restore_update(current, bytes(version.state))
        seq = document_state.update_append(
            document_id=document.id, update=update, user_id=actor.user_id
        )
        document_state.update_publish(document_id=document.id, seq=seq, update=update)
        publish(
            DocumentVersionRestored(
                document_id=document.id,
                version_id=version.id,
                version_name=version.name,
                seq=seq,
                actor_id=actor.user_id,
            )
        )
    return version, seq


def _copy_of(state: bytes | None) -> Doc | None:
    if state is None:
        return None
    try:
        return doc_of(state)
    except ValueError:
        raise ContentInvalidError("state", "Not a Yjs update.") from None


def _take_in(document_id: uuid.UUID, copy: Doc | None, actor: Actor) -> None:
    """Store and relay what the caller's copy holds that the database does not yet."""
    if copy is None:
        return
    missing = missing_update(document_state.state_load(document_id), copy)
    if missing is None:
        return
    try:
        seq = document_state.update_append(
            document_id=document_id, update=missing, user_id=actor.user_id
        )
    except document_state.InvalidUpdateError as error:
        raise ContentInvalidError("state", error.message) from None
    document_state.update_publish(document_id=document_id, seq=seq, update=missing)
