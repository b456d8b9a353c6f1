"""Reads of memory records: lists, one record with its validity history, extraction errors
and counts. Callers are authorised here as in the services (own, or ``memory.manage``)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, overload

from django.db.models import BooleanField, Count, ExpressionWrapper, Q, QuerySet

from lumina.memory.errors import InvalidInputError, MemoryNotFoundError
from lumina.memory.models.records import ExtractionError, Layer, MemoryAccess, MemoryRecord
from lumina.memory.records_types import ExtractionErrorDTO, MemoryRecordDTO
from lumina.memory.selectors.record_access import READ, may_see, owner_resolve
from lumina.security.api import Actor, require

MAX_PAGE = 500


def record_dto(row: MemoryRecord, *, embedded: bool | None = None) -> MemoryRecordDTO:
    """``embedded``: say so when the embedding column was left out of the query."""
    try:
        access = row.access
    except MemoryAccess.DoesNotExist:
        access = None
    return record_dto_of(
        row,
        metadata=row.metadata,
        access_count=access.count if access is not None else 0,
        last_accessed_at=access.last_accessed_at if access is not None else None,
        embedded=row.embedding is not None if embedded is None else embedded,
    )


def record_dto_of(
    row: Any,
    *,
    metadata: Mapping[str, Any] | None,
    access_count: int,
    last_accessed_at: dt.datetime | None,
    embedded: bool,
) -> MemoryRecordDTO:
    """The DTO of any row with a record's column attributes (a model instance, or a row
    read by raw SQL), given what such rows hold differently."""
    return MemoryRecordDTO(
        id=row.id,
        owner_id=row.owner_id,
        agent_id=row.agent_id,
        session_id=row.session_id,
        layer=row.layer,
        speaker=row.speaker,
        label=row.label,
        text=row.text,
        external_id=row.external_id,
        fact_key=row.fact_key,
        metadata=dict(metadata or {}),
        occurred_at=row.occurred_at,
        importance=row.importance,
        access_count=access_count,
        last_accessed_at=last_accessed_at,
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        recorded_at=row.recorded_at,
        superseded_at=row.superseded_at,
        superseded_by=row.superseded_by_id,
        provenance=tuple(row.provenance or ()),
        extracted_by=row.extracted_by,
        expires_at=row.expires_at,
        expired_at=row.expired_at,
        embedded=embedded,
    )


class RecordPage(Sequence[MemoryRecordDTO]):
    """A listing read as it is paged: ``len()`` is one count, a slice reads only its rows
    (without embeddings or search vectors, which a listing never shows)."""

    def __init__(self, rows: QuerySet[MemoryRecord]) -> None:
        self._rows = rows
        self._count: int | None = None

    def count(self) -> int:
        if self._count is None:
            self._count = self._rows.count()
        return self._count

    def __len__(self) -> int:
        return self.count()

    @overload
    def __getitem__(self, index: int) -> MemoryRecordDTO: ...
    @overload
    def __getitem__(self, index: slice) -> list[MemoryRecordDTO]: ...
    def __getitem__(self, index):
        if isinstance(index, slice):
            return [record_dto(row, embedded=row.has_embedding) for row in self._rows[index]]
        row = self._rows[index]
        return record_dto(row, embedded=row.has_embedding)

    def __iter__(self):
        return (record_dto(row, embedded=row.has_embedding) for row in self._rows.iterator(500))


def record_list(
    *,
    actor: Actor,
    user_id: uuid.UUID | None = None,
    layer: str | None = None,
    session_id: str | None = None,
    agent_id: str | None = None,
    as_of: dt.datetime | None = None,
    include_expired: bool = False,
    include_superseded: bool = False,
    occurred_after: dt.datetime | None = None,
    occurred_before: dt.datetime | None = None,
) -> RecordPage:
    """The owner's records, newest said first; read a page at a time (the view slices it,
    ``list()`` reads them all)."""
    owner_id = owner_resolve(actor, action=READ, user_id=user_id)
    if layer is not None and layer not in Layer.values:
        raise InvalidInputError("layer", f"One of {', '.join(Layer.values)}.")
    rows = (
        MemoryRecord.objects.filter(owner_id=owner_id)
        .select_related("access")
        .defer("search", "embedding")
        .annotate(has_embedding=ExpressionWrapper(Q(embedding__isnull=False), BooleanField()))
    )
    if layer is not None:
        rows = rows.filter(layer=layer)
    if session_id is not None:
        rows = rows.filter(session_id=session_id)
    if agent_id is not None:
        rows = rows.filter(agent_id=agent_id)
    if occurred_after is not None:
        rows = rows.filter(occurred_at__gte=occurred_after)
    if occurred_before is not None:
        rows = rows.filter(occurred_at__lt=occurred_before)
    if as_of is not None:
        rows = rows.filter(recorded_at__lte=as_of).filter(
            Q(superseded_at__isnull=True) | Q(superseded_at__gt=as_of),
            Q(expired_at__isnull=True) | Q(expired_at__gt=as_of),
        )
    else:
        if not include_superseded:
            rows = rows.filter(superseded_at__isnull=True)
        if not include_expired:
            rows = rows.filter(expired_at__isnull=True)
    # memrec_owner_layer_order holds this order: a page is an index range, not a sort.
    return RecordPage(rows.order_by("-occurred_at", "-recorded_at", "id"))


def _visible(actor: Actor, record_id: uuid.UUID) -> MemoryRecord:
    require(actor, READ)
    row = MemoryRecord.objects.filter(id=record_id).defer("search").first()
    if row is None or not may_see(actor, row.owner_id):
        raise MemoryNotFoundError(record_id)
    return row


def record_get(*, actor: Actor, record_id: uuid.UUID) -> MemoryRecordDTO:
    return record_dto(_visible(actor, record_id))


def record_history(*, actor: Actor, record_id: uuid.UUID) -> list[MemoryRecordDTO]:
    """Every version of a fact or block, oldest belief first: rows of the same key (facts),
    the same label (blocks), or linked by ``superseded_by``."""
    row = _visible(actor, record_id)
    rows = MemoryRecord.objects.filter(owner_id=row.owner_id, layer=row.layer).defer("search")
    if row.layer == Layer.SEMANTIC and row.fact_key:
        rows = rows.filter(fact_key=row.fact_key)
    elif row.layer == Layer.PINNED:
        rows = rows.filter(label=row.label)
    else:
        rows = rows.filter(Q(id=row.id) | Q(superseded_by=row.id) | Q(id=row.superseded_by_id))
    return [record_dto(item) for item in rows.order_by("recorded_at", "valid_from", "id")]


def _error_dto(row: ExtractionError) -> ExtractionErrorDTO:
    return ExtractionErrorDTO(
        id=row.id,
        owner_id=row.owner_id,
        extractor=row.extractor,
        turn_ids=tuple(row.turn_ids),
        error=row.error,
        raw_output=row.raw_output,
        created_at=row.created_at,
        resolved_at=row.resolved_at,
    )


def extraction_error_list(
    *, actor: Actor, user_id: uuid.UUID | None = None, unresolved_only: bool = False
) -> list[ExtractionErrorDTO]:
    owner_id = owner_resolve(actor, action=READ, user_id=user_id)
    rows = ExtractionError.objects.filter(owner_id=owner_id)
    if unresolved_only:
        rows = rows.filter(resolved_at__isnull=True)
    return [_error_dto(row) for row in rows.order_by("-created_at", "id")]


def record_stats(*, owner_id: uuid.UUID | None = None) -> dict[str, int]:
    """Counts per layer and state (for ``memory stats``; everyone's when no owner)."""
    rows = MemoryRecord.objects.all()
    if owner_id is not None:
        rows = rows.filter(owner_id=owner_id)
    counts = rows.aggregate(
        total=Count("id"),
        working=Count("id", filter=Q(layer=Layer.WORKING)),
        episodic=Count("id", filter=Q(layer=Layer.EPISODIC)),
        semantic=Count("id", filter=Q(layer=Layer.SEMANTIC)),
        pinned=Count("id", filter=Q(layer=Layer.PINNED)),
        superseded=Count("id", filter=Q(superseded_at__isnull=False)),
        expired=Count("id", filter=Q(expired_at__isnull=False)),
        unembedded=Count("id", filter=Q(embedding__isnull=True)),
        owners=Count("owner_id", distinct=True),
    )
    errors = ExtractionError.objects.all()
    if owner_id is not None:
        errors = errors.filter(owner_id=owner_id)
    counts["extraction_errors"] = errors.filter(resolved_at__isnull=True).count()
    return counts
