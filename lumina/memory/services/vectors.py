"""Write use-cases of vector collections: create, change, delete, upsert, reindex, re-embed.

Access: ``memory.write`` acts on the caller's own collections, ``memory.manage`` on
anyone's. Another user's collection is "not found" to a caller without
``memory.manage``, so names and counts never leak.

Every record write locks its collection's row: counters and the known metadata fields
stay exact, and a re-embedding can switch slots without racing a writer.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from django.db import IntegrityError, connection, transaction

from lumina.kernel.bus import publish
from lumina.kernel.errors import ConflictError
from lumina.memory.embedding import embed_texts
from lumina.memory.errors import InvalidInputError
from lumina.memory.events.vectors import CollectionReembedded, VectorsDeleted, VectorStored
from lumina.memory.models.vectors import (
    DEFAULT_HNSW_EF_CONSTRUCTION,
    DEFAULT_HNSW_M,
    MAX_DIMENSION,
    Collection,
    Distance,
    VectorRecord,
)
from lumina.memory.selectors.vector_access import (
    collection_forget,
    collection_info,
    collection_resolve,
    half_index,
    may_manage,
    vector_literal,
    vector_validate,
)
from lumina.memory.selectors.vector_filters import compile_filter
from lumina.memory.vector_types import CollectionInfo, UpsertResult
from lumina.providers.api import DEFAULT_EMBEDDING_MODEL
from lumina.security.api import Actor, require

# Raw SQL here only interpolates the table name, slot numbers (0/1), dimensions and
# collection ids from the database; every value from a caller is a parameter.

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
MAX_BATCH = 1000
MAX_TEXT = 100_000
MAX_METADATA_BYTES = 16_384
MAX_ID = 200
# The shipped model's width: a collection on it needs no probe to learn its dimension.
KNOWN_DIMENSIONS = {DEFAULT_EMBEDDING_MODEL: 384}
OPCLASS = {
    Distance.COSINE: "cosine_ops",
    Distance.L2: "l2_ops",
    Distance.IP: "ip_ops",
}


def _int_in(field: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInputError(field, f"'{field}' is a whole number from {low} to {high}.")
    return value


def _metadata_validate(value: Any, field: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError(field, "Metadata is a JSON object.")
    try:
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise InvalidInputError(
            field, "Metadata must be plain JSON (no NaN or infinite numbers)."
        ) from None
    if len(encoded.encode()) > MAX_METADATA_BYTES:
        raise InvalidInputError(field, f"Metadata is at most {MAX_METADATA_BYTES} bytes of JSON.")
    if any(not key or "\x00" in key for key in value):
        raise InvalidInputError(field, "Metadata keys are non-empty strings.")
    if "\x00" in encoded:
        raise InvalidInputError(field, "Metadata may not contain NUL characters.")
    return value


# --- Collections ------------------------------------------------------------------------


def collection_create(
    *,
    actor: Actor,
    name: str,
    embedding_model: str | None = DEFAULT_EMBEDDING_MODEL,
    dimension: int | None = None,
    distance: str = Distance.COSINE,
    description: str = "",
    hnsw_m: int = DEFAULT_HNSW_M,
    hnsw_ef_construction: int = DEFAULT_HNSW_EF_CONSTRUCTION,
    default_ef_search: int = 100,
    owner_id: uuid.UUID | None = None,
    build_index: bool = True,
) -> CollectionInfo:
    """A new collection. Without ``dimension`` the model is asked once for it (503 if down).

    ``embedding_model`` empty: the caller brings every vector; searches by text only use
    full text. ``build_index=False`` defers the HNSW index for a bulk load
    (``collection_reindex`` builds it).
    """
    require(actor, "memory.write")
    owner = owner_id or actor.user_id
    if owner is None:
        raise InvalidInputError("owner_id", "A system caller names the collection's owner.")
    if owner != actor.user_id and not may_manage(actor):
        require(actor, "memory.manage")
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidInputError(
            "name", "A name is 1-100 letters, digits, dots, dashes or underscores."
        )
    if distance not in Distance.values:
        raise InvalidInputError("distance", f"Use one of {', '.join(Distance.values)}.")
    model = (embedding_model or "").strip()
    if len(model) > 200:
        raise InvalidInputError("embedding_model", "At most 200 characters.")
    _int_in("hnsw_m", hnsw_m, 2, 100)
    _int_in("hnsw_ef_construction", hnsw_ef_construction, 4, 1000)
    _int_in("default_ef_search", default_ef_search, 1, 1000)
    if hnsw_ef_construction < 2 * hnsw_m:
        raise InvalidInputError(
            "hnsw_ef_construction", "hnsw_ef_construction must be at least twice hnsw_m."
        )
    if dimension is None:
        if not model:
            raise InvalidInputError("dimension", "Without an embedding model, give the dimension.")
        dimension = KNOWN_DIMENSIONS.get(model) or len(
            embed_texts(["dimension probe"], actor=actor, model=model)[0]
        )
    _int_in("dimension", dimension, 1, MAX_DIMENSION)
    known = KNOWN_DIMENSIONS.get(model)
    if known is not None and known != dimension:
        raise InvalidInputError(
            "dimension", f"The model '{model}' returns {known} dimensions, not {dimension}."
        )
    try:
        with transaction.atomic():
            collection = Collection.objects.create(
                name=name,
                owner_id=owner,
                description=str(description or "")[:2000],
                embedding_model=model,
                dimension=dimension,
                distance=distance,
                hnsw_m=hnsw_m,
                hnsw_ef_construction=hnsw_ef_construction,
                default_ef_search=default_ef_search,
            )
    except IntegrityError:
        raise ConflictError(
            f"You already have a collection named '{name}'.",
            fields={"name": ["A collection with this name exists."]},
        ) from None
    if build_index:
        # The new index starts empty and grows with each insert. Building it still reads
        # the shared table once: concurrently, so other collections' writes go on.
        _index_create(
            collection, collection.active_slot, concurrently=not connection.in_atomic_block
        )
    return collection_info(collection)


def collection_update(
    *,
    actor: Actor,
    ref: str | uuid.UUID,
    description: str | None = None,
    default_ef_search: int | None = None,
) -> CollectionInfo:
    with transaction.atomic():
        collection = collection_resolve(actor=actor, ref=ref, action="memory.write", lock=True)
        if description is not None:
            collection.description = str(description)[:2000]
        if default_ef_search is not None:
            collection.default_ef_search = _int_in("default_ef_search", default_ef_search, 1, 1000)
        collection.save()
    collection_forget(collection.id)
    return collection_info(collection)


def collection_delete(*, actor: Actor, ref: str | uuid.UUID) -> None:
    with transaction.atomic():
        collection = collection_resolve(actor=actor, ref=ref, action="memory.write", lock=True)
        count = collection.record_count
        for slot in (0, 1):
            _index_drop(collection, slot, concurrently=False)
        collection.delete()
        collection_forget(collection.id)
        publish(
            VectorsDeleted(collection_id=collection.id, owner_id=collection.owner_id, count=count)
        )


# --- Indexes ----------------------------------------------------------------------------


def index_name(collection: Collection, slot: int) -> str:
    return f"memory_vec_{collection.id.hex}_{slot}"


def _index_create(collection: Collection, slot: int, *, concurrently: bool, dimension=None) -> None:
    dimension = int(dimension or collection.dimension)
    table = VectorRecord._meta.db_table
    with connection.cursor() as cursor:
        if connection.in_atomic_block:
            # CREATE INDEX refuses to run while deferred foreign-key checks are pending.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        # The whole graph in memory makes the build several times faster.
        cursor.execute("SET maintenance_work_mem = '1GB'")
        kind = collection.index_type  # halfvec or vector, a pgvector type
        cursor.execute(
            f"CREATE INDEX {'CONCURRENTLY ' if concurrently else ''}IF NOT EXISTS "
            f"{index_name(collection, slot)} ON {table} USING hnsw "
            f"((vector_{slot}::{kind}({dimension})) {kind}_{OPCLASS[collection.distance]}) "
            f"WITH (m = {int(collection.hnsw_m)}, "
            f"ef_construction = {int(collection.hnsw_ef_construction)}) "
            f"WHERE collection_id = '{collection.id}'::uuid"
        )
        cursor.execute("RESET maintenance_work_mem")


def _index_drop(collection: Collection, slot: int, *, concurrently: bool) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"DROP INDEX {'CONCURRENTLY ' if concurrently else ''}IF EXISTS "
            f"{index_name(collection, slot)}"
        )


def index_exists(collection: Collection, slot: int | None = None) -> bool:
    slot = collection.active_slot if slot is None else slot
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s AND i.indisvalid",
            [index_name(collection, slot)],
        )
        return cursor.fetchone() is not None


def collection_reindex(*, actor: Actor, ref: str | uuid.UUID) -> CollectionInfo:
    """Build (or rebuild) the collection's HNSW index over the vectors searches read.

    Outside a transaction the build is ``CONCURRENTLY``: writes go on meanwhile.
    """
    collection = collection_resolve(actor=actor, ref=ref, action="memory.write")
    concurrently = not connection.in_atomic_block
    slot = collection.active_slot
    _index_drop(collection, slot, concurrently=concurrently)
    _index_create(collection, slot, concurrently=concurrently)
    return collection_info(collection)


# --- Records ----------------------------------------------------------------------------


def _items_validate(collection: Collection, items: Any) -> list[dict]:
    if not isinstance(items, list) or not items:
        raise InvalidInputError("records", "Give a non-empty list of records.")
    if len(items) > MAX_BATCH:
        raise InvalidInputError("records", f"At most {MAX_BATCH} records per call.")
    cleaned: dict[str, dict] = {}
    for index, item in enumerate(items):
        where = f"records[{index}]"
        if not isinstance(item, Mapping):
            raise InvalidInputError(where, "A record is an object with id, vector/text, metadata.")
        unknown = set(item) - {"id", "vector", "text", "metadata"}
        if unknown:
            raise InvalidInputError(f"{where}.{sorted(unknown)[0]}", "Unknown field.")
        external_id = item.get("id")
        if external_id is None:
            external_id = uuid.uuid4().hex
        if not isinstance(external_id, str) or not 0 < len(external_id) <= MAX_ID:
            raise InvalidInputError(f"{where}.id", f"An id is a string of 1-{MAX_ID} characters.")
        if "\x00" in external_id:
            raise InvalidInputError(f"{where}.id", "An id may not contain NUL characters.")
        text = item.get("text")
        if text is not None and not isinstance(text, str):
            raise InvalidInputError(f"{where}.text", "Text is a string.")
        text = text or ""
        if len(text) > MAX_TEXT:
            raise InvalidInputError(f"{where}.text", f"At most {MAX_TEXT} characters.")
        if "\x00" in text:
            raise InvalidInputError(f"{where}.text", "Text may not contain NUL characters.")
        vector = item.get("vector")
        if vector is not None:
            vector = vector_validate(
                vector,
                dimension=collection.dimension,
                field=f"{where}.vector",
                half=half_index(collection),
            )
        elif not text.strip():
            raise InvalidInputError(f"{where}.text", "Give a vector, or a non-empty text to embed.")
        elif not collection.embedding_model:
            raise InvalidInputError(
                f"{where}.vector", "This collection has no embedding model: give the vector."
            )
        if collection.reembedding and not text.strip():
            raise InvalidInputError(
                f"{where}.text",
                "The collection is being re-embedded: every record needs its text.",
            )
        metadata = _metadata_validate(item.get("metadata"), f"{where}.metadata")
        if external_id in cleaned:
            raise InvalidInputError(f"{where}.id", f"The id '{external_id}' appears twice.")
        cleaned[external_id] = {
            "id": external_id,
            "text": text,
            "vector": vector,
            "metadata": metadata,
        }
    return list(cleaned.values())


def vectors_upsert(*, actor: Actor, ref: str | uuid.UUID, records: Any) -> UpsertResult:
    """Insert or replace records by id; texts without a vector are embedded first.

    All or nothing: one bad record is a 400 naming it, and nothing is written.
    """
    collection = collection_resolve(actor=actor, ref=ref, action="memory.write")
    items = _items_validate(collection, records)
    to_embed = [item for item in items if item["vector"] is None]
    if to_embed:
        vectors = embed_texts(
            [item["text"] for item in to_embed], actor=actor, model=collection.embedding_model
        )
        for item, vector in zip(to_embed, vectors, strict=True):
            item["vector"] = vector_validate(
                vector,
                dimension=collection.dimension,
                field="embedding_model",
                half=half_index(collection),
            )
    with transaction.atomic():
        locked = Collection.objects.select_for_update().get(pk=collection.pk)
        if (locked.active_slot, locked.dimension, locked.embedding_model) != (
            collection.active_slot,
            collection.dimension,
            collection.embedding_model,
        ):
            raise ConflictError(
                "The collection switched embedding model meanwhile: send the records again.",
                fields={"collection": ["Re-embedded during the write."]},
            )
        slot = locked.active_slot
        idle = 1 - slot
        table = VectorRecord._meta.db_table
        rows = [
            (
                str(locked.id),
                item["id"],
                item["text"],
                json.dumps(item["metadata"]),
                vector_literal(item["vector"]),
            )
            for item in items
        ]
        values = ",".join(["(%s::uuid, %s, %s, %s::jsonb, %s::vector, now(), now())"] * len(rows))
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (collection_id, external_id, text, metadata, "  # noqa: S608
                f"vector_{slot}, created_at, updated_at) VALUES {values} "
                f"ON CONFLICT (collection_id, external_id) DO UPDATE SET "
                f"text = EXCLUDED.text, metadata = EXCLUDED.metadata, "
                f"vector_{slot} = EXCLUDED.vector_{slot}, vector_{idle} = NULL, "
                f"updated_at = now() RETURNING (xmax = 0)",
                [value for row in rows for value in row],
            )
            inserted = sum(1 for (flag,) in cursor.fetchall() if flag)
        fields = set(locked.metadata_fields)
        fields.update(key for item in items for key in item["metadata"])
        locked.metadata_fields = sorted(fields)
        locked.record_count += inserted
        locked.save(update_fields=["metadata_fields", "record_count", "updated_at"])
        collection_forget(locked.id)
        ids = tuple(item["id"] for item in items)
        publish(
            VectorStored(
                collection_id=locked.id,
                owner_id=locked.owner_id,
                record_ids=ids,
                inserted=inserted,
                updated=len(items) - inserted,
            )
        )
    return UpsertResult(
        collection=locked.name, inserted=inserted, updated=len(items) - inserted, ids=ids
    )


def vectors_delete(
    *,
    actor: Actor,
    ref: str | uuid.UUID,
    ids: Sequence[str] | None = None,
    filter: Mapping[str, Any] | None = None,
) -> int:
    """Delete records by id, or every record the filter matches; the number deleted.

    Give ``ids`` or a non-empty ``filter``, not both: deleting everything is
    ``collection_delete``.
    """
    collection = collection_resolve(actor=actor, ref=ref, action="memory.write")
    if filter is not None and not isinstance(filter, Mapping):
        raise InvalidInputError("filter", "A filter is a JSON object.")
    if (ids is None) == (not filter):
        raise InvalidInputError("ids", "Give either ids or a non-empty filter.")
    if ids is not None:
        if not isinstance(ids, list | tuple) or not ids or len(ids) > MAX_BATCH:
            raise InvalidInputError("ids", f"Give 1 to {MAX_BATCH} ids.")
        if any(not isinstance(value, str) or "\x00" in value for value in ids):
            raise InvalidInputError("ids", "Ids are strings without NUL characters.")
        condition, params = "external_id = ANY(%s)", [list(ids)]
    else:
        compiled = compile_filter(filter, known_fields=collection.metadata_fields)
        condition, params = compiled.sql, compiled.params
    with transaction.atomic():
        locked = Collection.objects.select_for_update().get(pk=collection.pk)
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {VectorRecord._meta.db_table} "  # noqa: S608
                f"WHERE collection_id = %s AND {condition}",
                [locked.id, *params],
            )
            deleted = cursor.rowcount
        if deleted:
            locked.record_count = max(0, locked.record_count - deleted)
            locked.save(update_fields=["record_count", "updated_at"])
            publish(
                VectorsDeleted(collection_id=locked.id, owner_id=locked.owner_id, count=deleted)
            )
    return deleted


# --- Re-embedding -----------------------------------------------------------------------


def reembed_start(*, actor: Actor, ref: str | uuid.UUID, model: str) -> Collection:
    """Mark the collection as moving to ``model``; resuming the same move changes nothing.

    The idle slot is emptied (it may hold an older model's vectors) before filling starts.
    """
    model = (model or "").strip()
    if not model:
        raise InvalidInputError("model", "Name the embedding model to move to.")
    collection = collection_resolve(actor=actor, ref=ref, action="memory.write")
    if collection.pending_model == model:
        return collection
    if collection.pending_model:
        raise ConflictError(
            f"The collection is moving to '{collection.pending_model}'; finish or cancel that.",
            fields={"model": ["Another re-embedding is in progress."]},
        )
    without_text = VectorRecord.objects.filter(collection=collection, text="").count()
    if without_text:
        raise InvalidInputError(
            "collection", f"{without_text} records have no text to embed again."
        )
    dimension = KNOWN_DIMENSIONS.get(model) or len(
        embed_texts(["dimension probe"], actor=actor, model=model)[0]
    )
    _int_in("dimension", dimension, 1, MAX_DIMENSION)
    idle = 1 - collection.active_slot
    concurrently = not connection.in_atomic_block
    _index_drop(collection, idle, concurrently=concurrently)
    _slot_clear(collection, idle)
    with transaction.atomic():
        locked = Collection.objects.select_for_update().get(pk=collection.pk)
        locked.pending_model, locked.pending_dimension = model, dimension
        locked.save(update_fields=["pending_model", "pending_dimension", "updated_at"])
    return locked


def _slot_clear(collection: Collection, slot: int, batch: int = 5000) -> None:
    table = VectorRecord._meta.db_table
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET vector_{slot} = NULL WHERE id IN (SELECT id FROM {table} "  # noqa: S608
                f"WHERE collection_id = %s AND vector_{slot} IS NOT NULL LIMIT %s)",
                [collection.id, batch],
            )
            if cursor.rowcount < batch:
                return


def reembed_batch(*, actor: Actor, collection: Collection, batch_size: int = 64) -> int:
    """Embed one batch of records still missing the new model's vector; how many it did.

    Each batch commits on its own, so an interrupted run resumes where it stopped.
    """
    table = VectorRecord._meta.db_table
    idle = 1 - collection.active_slot
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, text FROM {table} WHERE collection_id = %s AND vector_{idle} IS NULL "  # noqa: S608
                f"ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                [collection.id, batch_size],
            )
            rows = cursor.fetchall()
        if not rows:
            return 0
        vectors = embed_texts(
            [text for _, text in rows], actor=actor, model=collection.pending_model
        )
        params = []
        for (record_id, _), vector in zip(rows, vectors, strict=True):
            array = vector_validate(
                vector,
                dimension=collection.pending_dimension,
                field="model",
                half=half_index(collection),
            )
            params.append((vector_literal(array), record_id))
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET vector_{idle} = %s::vector WHERE id = %s",  # noqa: S608
                params,
            )
    return len(rows)


def reembed_remaining(collection: Collection) -> int:
    idle = 1 - collection.active_slot
    return VectorRecord.objects.filter(
        collection=collection, **{f"vector_{idle}__isnull": True}
    ).count()


def reembed_finish(*, actor: Actor, collection: Collection) -> CollectionInfo:
    """Index the new vectors, then switch searches to them in one step.

    Returns without switching (``reembedding_to`` still set) if a write added records
    to embed meanwhile; the next run picks them up.
    """
    idle = 1 - collection.active_slot
    concurrently = not connection.in_atomic_block
    _index_create(
        collection, idle, concurrently=concurrently, dimension=collection.pending_dimension
    )
    with transaction.atomic():
        locked = Collection.objects.select_for_update().get(pk=collection.pk)
        if reembed_remaining(locked):
            return collection_info(locked)
        old = locked.active_slot
        locked.active_slot = idle
        locked.embedding_model, locked.dimension = locked.pending_model, locked.pending_dimension
        locked.pending_model, locked.pending_dimension = "", None
        locked.save()
        collection_forget(locked.id)
        publish(
            CollectionReembedded(
                collection_id=locked.id,
                owner_id=locked.owner_id,
                embedding_model=locked.embedding_model,
                dimension=locked.dimension,
            )
        )
    _index_drop(locked, old, concurrently=concurrently)
    return collection_info(locked)


def collection_reembed(
    *,
    actor: Actor,
    ref: str | uuid.UUID,
    model: str,
    batch_size: int = 64,
    max_batches: int | None = None,
    progress=None,
) -> CollectionInfo:
    """Move a collection to ``model`` in resumable batches; searches keep working throughout.

    ``max_batches`` stops early (resume by calling again); ``progress(done, remaining)``
    is called after each batch.
    """
    _int_in("batch_size", batch_size, 1, MAX_BATCH)
    collection = reembed_start(actor=actor, ref=ref, model=model)
    done = batches = 0
    while max_batches is None or batches < max_batches:
        count = reembed_batch(actor=actor, collection=collection, batch_size=batch_size)
        if not count:
            break
        done += count
        batches += 1
        if progress is not None:
            progress(done, reembed_remaining(collection))
    if reembed_remaining(collection):
        return collection_info(collection)
    return reembed_finish(actor=actor, collection=collection)


def collection_reembed_cancel(*, actor: Actor, ref: str | uuid.UUID) -> CollectionInfo:
    collection = collection_resolve(actor=actor, ref=ref, action="memory.write")
    idle = 1 - collection.active_slot
    _index_drop(collection, idle, concurrently=not connection.in_atomic_block)
    with transaction.atomic():
        locked = Collection.objects.select_for_update().get(pk=collection.pk)
        locked.pending_model, locked.pending_dimension = "", None
        locked.save(update_fields=["pending_model", "pending_dimension", "updated_at"])
    _slot_clear(locked, idle)
    return collection_info(locked)
