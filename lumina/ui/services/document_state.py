"""A document's Yjs state, event-sourced in PostgreSQL: append updates, load, compact.

The content of a document is its latest snapshot with every later update applied, in
``seq`` order (ADR 0021). ``update_append`` is for updates made outside a websocket
(a restore, an import); the sync rooms append in batches with ``updates_append``.
``update_publish`` hands such an update, after commit, to the live rooms of every
process, which apply it and relay it to their clients.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from pycrdt import Doc

from lumina.kernel.errors import ApplicationError, NotFoundError
from lumina.ui.models import Document, DocumentSnapshot, DocumentUpdate
from lumina.ui.services.content import apply_untrusted

logger = structlog.get_logger(__name__)

# A Yjs v1 update that changes nothing: no structs, an empty delete set.
EMPTY_UPDATE = b"\x00\x00"
# Transaction-scoped advisory locks, one key space per purpose (the first int).
_COMPACT_LOCK = 0x75690001

# Called after commit with (document id, seq, update): set by the sync rooms, which
# relay to every process's room (``lumina.ui.consumers.rooms``).
Publisher = Callable[[uuid.UUID, int, bytes], None]
_publisher: Publisher | None = None


class InvalidUpdateError(ApplicationError):
    code = "invalid_update"


@dataclass(frozen=True)
class LoadedState:
    state: bytes  # every update up to ``seq`` merged into one
    seq: int  # the last update it includes (0: none)


def _live_document_exists(document_id: uuid.UUID) -> bool:
    return Document.objects.filter(id=document_id, deleted_at__isnull=True).exists()


def state_load_with_seq(document_id: uuid.UUID) -> LoadedState:
    """The document's state and the seq it is current to; NotFoundError when it does not
    exist or is deleted."""
    if not _live_document_exists(document_id):
        raise NotFoundError("No such document.", fields={"document_id": ["Not found."]})
    with transaction.atomic():
        snapshot = (
            DocumentSnapshot.objects.filter(document_id=document_id)
            .order_by("-upto_seq")
            .values_list("upto_seq", "state")
            .first()
        )
        base_seq, base = (snapshot[0], bytes(snapshot[1])) if snapshot else (0, None)
        rows = list(
            DocumentUpdate.objects.filter(document_id=document_id, seq__gt=base_seq)
            .order_by("seq")
            .values_list("seq", "data")
        )
    updates = ([base] if base is not None else []) + [bytes(data) for _, data in rows]
    seq = rows[-1][0] if rows else base_seq
    return LoadedState(state=_merge(updates), seq=seq)


def state_load(document_id: uuid.UUID) -> bytes:
    """The document's whole state as one Yjs v1 update (snapshot + later updates)."""
    return state_load_with_seq(document_id).state


def _merge(updates: Sequence[bytes]) -> bytes:
    if not updates:
        return EMPTY_UPDATE
    if len(updates) == 1:
        return updates[0]
    # Applying to a Doc (rather than merge_updates alone) also garbage-collects what
    # deletions made unreachable, so the snapshot shrinks as the document does.
    doc = Doc()
    for update in updates:
        doc.apply_update(update)
    return doc.get_update()


def updates_since(document_id: uuid.UUID, *, after_seq: int) -> list[tuple[int, bytes]]:
    """The updates with a seq above ``after_seq``, in order (a room catching up)."""
    return [
        (seq, bytes(data))
        for seq, data in DocumentUpdate.objects.filter(document_id=document_id, seq__gt=after_seq)
        .order_by("seq")
        .values_list("seq", "data")
    ]


def latest_seq(document_id: uuid.UUID) -> int:
    """The seq of the document's last appended update (0: none)."""
    return (
        DocumentUpdate.objects.filter(document_id=document_id)
        .order_by("-seq")
        .values_list("seq", flat=True)
        .first()
    ) or 0


def update_validate(update: bytes) -> None:
    """Refuse what is not a Yjs v1 update (InvalidUpdateError)."""
    max_bytes = settings.LUMINA_DOCUMENTS_MAX_UPDATE_BYTES
    if len(update) > max_bytes:
        raise InvalidUpdateError(
            f"The update is larger than {max_bytes} bytes.",
            fields={"update": [f"At most {max_bytes} bytes."]},
        )
    try:
        apply_untrusted(Doc(), update)
    except ValueError as error:
        raise InvalidUpdateError(
            "Not a Yjs update.", fields={"update": [f"Cannot be decoded: {error}."]}
        ) from error


_APPEND_SQL = (
    # One statement, so an append outside a transaction is one round trip. The UPDATE
    # locks the document row (and marks it changed); appenders of the same document
    # queue on it. After waiting, MAX(seq) may come from the statement's older snapshot
    # and clash with the rows just committed: the unique constraint refuses, and the
    # statement is simply run again.
    f"WITH doc AS (UPDATE {Document._meta.db_table} SET updated_at = now() "  # noqa: S608
    "WHERE id = %s AND deleted_at IS NULL RETURNING id), "
    f"base AS (SELECT COALESCE(MAX(seq), 0) AS seq FROM {DocumentUpdate._meta.db_table} "
    "WHERE document_id = %s) "
    f"INSERT INTO {DocumentUpdate._meta.db_table} (document_id, seq, data, user_id, created_at) "
    "SELECT doc.id, base.seq + item.ordinality, item.data, item.user_id, now() "
    "FROM doc, base, "
    "unnest(%s::bytea[], %s::uuid[]) WITH ORDINALITY AS item(data, user_id, ordinality) "
    "RETURNING seq"
)
APPEND_ATTEMPTS = 20


def updates_append(
    *, document_id: uuid.UUID, updates: Sequence[tuple[bytes, uuid.UUID | None]]
) -> list[int]:
    """Append already validated updates, all or none; their seqs, in order."""
    if not updates:
        return []
    parameters = [
        document_id,
        document_id,
        [update for update, _ in updates],
        [user_id for _, user_id in updates],
    ]
    for attempt in range(APPEND_ATTEMPTS):
        try:
            # Inside the caller's transaction a savepoint keeps a clash from spoiling it;
            # alone, the statement is its own transaction.
            scope = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
            with scope, connection.cursor() as cursor:
                cursor.execute(_APPEND_SQL, parameters)
                seqs = sorted(row[0] for row in cursor.fetchall())
        except IntegrityError:
            if attempt == APPEND_ATTEMPTS - 1:
                raise
            continue
        if not seqs:
            raise NotFoundError("No such document.", fields={"document_id": ["Not found."]})
        return seqs
    raise AssertionError("unreachable")


def update_append(*, document_id: uuid.UUID, update: bytes, user_id: uuid.UUID | None) -> int:
    """Validate and append one update made outside a websocket; its seq.

    Call ``update_publish`` with the seq (inside the same transaction or after) so the
    live rooms and their clients see it.
    """
    update_validate(update)
    (seq,) = updates_append(document_id=document_id, updates=[(update, user_id)])
    return seq


def update_publish(*, document_id: uuid.UUID, seq: int, update: bytes) -> None:
    """Relay an appended update to every process's live room, once the caller's
    transaction commits (at once outside one)."""
    publisher = _publisher
    if publisher is None:
        return  # no sync rooms loaded in this process (and none to tell)
    transaction.on_commit(lambda: publisher(document_id, seq, update))


def publisher_set(publisher: Publisher | None) -> None:
    global _publisher
    _publisher = publisher


def compact(document_id: uuid.UUID) -> int | None:
    """Fold every update so far into a new snapshot; the seq it covers (None: nothing to
    do). Updates stay: they are the document's history (versions, audit)."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            # One compaction per document at a time; appends go on meanwhile.
            cursor.execute(
                "SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))",
                [_COMPACT_LOCK, str(document_id)],
            )
            if not cursor.fetchone()[0]:
                return None
        loaded = state_load_with_seq(document_id)
        latest = (
            DocumentSnapshot.objects.filter(document_id=document_id)
            .order_by("-upto_seq")
            .values_list("upto_seq", flat=True)
            .first()
        )
        if loaded.seq == 0 or latest == loaded.seq:
            return None
        DocumentSnapshot.objects.create(
            document_id=document_id, upto_seq=loaded.seq, state=loaded.state
        )
        # Older snapshots are covered by this one.
        DocumentSnapshot.objects.filter(document_id=document_id, upto_seq__lt=loaded.seq).delete()
    logger.info("document compacted", document_id=str(document_id), upto_seq=loaded.seq)
    return loaded.seq


def updates_since_snapshot(document_id: uuid.UUID) -> int:
    """How many updates the latest snapshot does not cover (compaction is due when many)."""
    latest = (
        DocumentSnapshot.objects.filter(document_id=document_id)
        .order_by("-upto_seq")
        .values_list("upto_seq", flat=True)
        .first()
    ) or 0
    return DocumentUpdate.objects.filter(document_id=document_id, seq__gt=latest).count()
