"""Pinned blocks: named, editable texts always placed in context (Letta's core memory).

An edit never overwrites: the old version is closed (``superseded_at``, ``superseded_by``)
and a new one stored, so a block's history stays readable. Removing a block expires it:
out of context and search, kept for audit until purged.
"""

from __future__ import annotations

import json
import uuid

from django.db import IntegrityError, transaction
from django.utils import timezone

from lumina.kernel.bus import publish, publish_many
from lumina.kernel.errors import ConflictError
from lumina.memory.errors import InvalidInputError, MemoryNotFoundError
from lumina.memory.events.records import (
    MemoryExpired,
    MemoryStored,
    MemorySuperseded,
)
from lumina.memory.models.records import Layer, MemoryRecord
from lumina.memory.records_types import MemoryRecordDTO
from lumina.memory.selectors.record_access import READ, WRITE, may_see, owner_resolve
from lumina.memory.selectors.records import record_dto
from lumina.memory.services.record_embedding import embed_texts
from lumina.memory.services.records import MAX_TEXT
from lumina.security.api import Actor, require

MAX_LABEL = 100
MAX_BLOCKS = 50


def _check(label: str | None, text: str | None) -> None:
    if label is not None and (not label.strip() or len(label) > MAX_LABEL):
        raise InvalidInputError("label", f"A name of 1 to {MAX_LABEL} characters.")
    if (label and "\x00" in label) or (text and "\x00" in text):
        raise InvalidInputError("text" if text and "\x00" in text else "label", "No NUL.")
    if text is not None:
        if not text.strip():
            raise InvalidInputError("text", "The text must not be empty.")
        if len(text) > MAX_TEXT:
            raise InvalidInputError("text", f"At most {MAX_TEXT} characters.")


def _current(actor: Actor, block_id: uuid.UUID, *, action: str) -> MemoryRecord:
    row = MemoryRecord.objects.filter(
        id=block_id, layer=Layer.PINNED, superseded_at__isnull=True, expired_at__isnull=True
    ).first()
    require(actor, action)
    if row is None or not may_see(actor, row.owner_id, action=action):
        raise MemoryNotFoundError(block_id)
    return row


def pinned_list(*, actor: Actor, user_id: uuid.UUID | None = None) -> list[MemoryRecordDTO]:
    owner_id = owner_resolve(actor, action=READ, user_id=user_id)
    rows = MemoryRecord.objects.filter(
        owner_id=owner_id, layer=Layer.PINNED, superseded_at__isnull=True, expired_at__isnull=True
    ).order_by("label")
    return [record_dto(row) for row in rows]


def pinned_get(*, actor: Actor, block_id: uuid.UUID) -> MemoryRecordDTO:
    return record_dto(_current(actor, block_id, action=READ))


def pinned_create(
    *,
    actor: Actor,
    label: str,
    text: str,
    agent_id: str = "",
    metadata: dict | None = None,
    user_id: uuid.UUID | None = None,
) -> MemoryRecordDTO:
    owner_id = owner_resolve(actor, action=WRITE, user_id=user_id)
    _check(label, text)
    if "\\u0000" in json.dumps(metadata or {}, default=str):
        raise InvalidInputError("metadata", "Must not contain NUL characters.")
    count = MemoryRecord.objects.filter(
        owner_id=owner_id, layer=Layer.PINNED, superseded_at__isnull=True, expired_at__isnull=True
    ).count()
    if count >= MAX_BLOCKS:
        raise InvalidInputError("label", f"At most {MAX_BLOCKS} pinned blocks.")
    [embedding] = embed_texts([text])
    now = timezone.now()
    row = MemoryRecord(
        owner_id=owner_id,
        agent_id=agent_id,
        layer=Layer.PINNED,
        label=label.strip(),
        text=text,
        embedding=embedding,
        metadata=dict(metadata or {}),
        occurred_at=now,
        importance=1.0,
        recorded_at=now,
        valid_from=now,
    )
    try:
        with transaction.atomic():
            row.save()
            publish(
                MemoryStored(
                    owner_id=owner_id,
                    layer=Layer.PINNED,
                    record_ids=(row.id,),
                    actor_id=actor.user_id,
                )
            )
    except IntegrityError:
        raise ConflictError(
            f"A pinned block named '{label}' exists.", fields={"label": ["already pinned"]}
        ) from None
    return record_dto(row)


def pinned_update(
    *,
    actor: Actor,
    block_id: uuid.UUID,
    text: str | None = None,
    label: str | None = None,
) -> MemoryRecordDTO:
    """A new version of the block; the old one stays, closed."""
    _check(label, text)
    old = _current(actor, block_id, action=WRITE)
    new_text = text if text is not None else old.text
    embedding = embed_texts([new_text])[0] if text is not None else old.embedding
    now = timezone.now()
    try:
        with transaction.atomic():
            old.superseded_at = now
            old.save(update_fields=["superseded_at"])
            new = MemoryRecord(
                owner_id=old.owner_id,
                agent_id=old.agent_id,
                layer=Layer.PINNED,
                label=(label or old.label).strip(),
                text=new_text,
                embedding=embedding,
                metadata=old.metadata,
                occurred_at=now,
                importance=old.importance,
                recorded_at=now,
                valid_from=now,
                provenance=[*old.provenance, old.id],
            )
            new.save()
            old.superseded_by = new
            old.save(update_fields=["superseded_by"])
            publish_many(
                [
                    MemoryStored(
                        owner_id=old.owner_id,
                        layer=Layer.PINNED,
                        record_ids=(new.id,),
                        actor_id=actor.user_id,
                    ),
                    MemorySuperseded(
                        owner_id=old.owner_id,
                        record_id=old.id,
                        superseded_by=new.id,
                        decision="update",
                        actor_id=actor.user_id,
                    ),
                ]
            )
    except IntegrityError:
        raise ConflictError(
            f"A pinned block named '{label}' exists.", fields={"label": ["already pinned"]}
        ) from None
    return record_dto(new)


def pinned_remove(*, actor: Actor, block_id: uuid.UUID) -> None:
    """Out of context and search at once; kept for audit until ``memory purge``."""
    row = _current(actor, block_id, action=WRITE)
    with transaction.atomic():
        row.expired_at = timezone.now()
        row.save(update_fields=["expired_at"])
        publish(MemoryExpired(owner_id=row.owner_id, record_ids=(row.id,)))
