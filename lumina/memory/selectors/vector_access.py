"""Who may see a collection, and the checks every vector goes through.

Shared by the read queries and the write use-cases: another user's collection is "not
found" to a caller without ``memory.manage``, the same answer as a missing one.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from lumina.kernel.lazy import LazyImport
from lumina.memory.errors import CollectionNotFoundError, InvalidInputError
from lumina.memory.models.vectors import Collection, Distance, IndexType
from lumina.memory.vector_types import CollectionInfo
from lumina.security.api import Actor, authorize, require

np = LazyImport("numpy")  # loaded with the first computation, not with the server

OPERATOR = {Distance.COSINE: "<=>", Distance.L2: "<->", Distance.IP: "<#>"}
# The largest magnitude a half-precision index can hold.
HALF_MAX = 65504.0


# --- Access -----------------------------------------------------------------------------


def may_manage(actor: Actor) -> bool:
    return bool(authorize(actor, "memory.manage"))


def collection_resolve(
    *, actor: Actor, ref: str | uuid.UUID, action: str, lock: bool = False
) -> Collection:
    """The collection ``ref`` names (the caller's own by name, or any visible one by id).

    ``require`` raises 403 for a caller without ``action``; a collection the caller may
    not see is 404, the same as one that does not exist.
    """
    require(actor, action)
    queryset = Collection.objects.select_for_update() if lock else Collection.objects.all()
    try:
        key = ref if isinstance(ref, uuid.UUID) else uuid.UUID(str(ref))
    except ValueError:
        key = None
    found = None
    if key is not None:
        found = queryset.filter(id=key).first()
    if found is None and actor.user_id is not None:
        found = queryset.filter(owner_id=actor.user_id, name=str(ref)).first()
    if found is None or (found.owner_id != actor.user_id and not may_manage(actor)):
        raise CollectionNotFoundError(str(ref)[:100])
    return found


# Searches read a collection's settings from a per-process cache, so a search is one round
# trip. The search statement itself checks that the collection still has the slot and
# dimension it was planned for (``collection_guard``); an empty answer, or a filter on a
# field the cached copy does not know, re-reads the collection and searches again.
CACHE_SECONDS = 5.0
CACHE_SIZE = 4096
_cache: dict[tuple[uuid.UUID | None, str], tuple[float, Collection]] = {}


def collection_cached(*, actor: Actor, ref: str | uuid.UUID) -> tuple[Collection, bool]:
    """``collection_resolve`` for reading, and whether the answer came from the cache."""
    require(actor, "memory.read")
    key = (actor.user_id, str(ref))
    hit = _cache.get(key)
    now = time.monotonic()
    if hit is not None and now - hit[0] < CACHE_SECONDS:
        collection = hit[1]
        if collection.owner_id == actor.user_id or may_manage(actor):
            return collection, True
    collection = collection_resolve(actor=actor, ref=ref, action="memory.read")
    if len(_cache) >= CACHE_SIZE:
        _cache.clear()
    _cache[key] = (now, collection)
    return collection, False


def collection_forget(collection_id: uuid.UUID | None = None) -> None:
    """Drop cached copies (of one collection, or all) after this process changed it."""
    for key in [k for k, (_, c) in _cache.items() if collection_id in (None, c.id)]:
        _cache.pop(key, None)


def collection_guard(collection: Collection) -> str:
    """A condition true only while the collection has the slot and dimension searched."""
    return (
        f"EXISTS (SELECT 1 FROM {Collection._meta.db_table} WHERE id = '{collection.id}'::uuid"  # noqa: S608
        f" AND active_slot = {int(collection.active_slot)}"
        f" AND dimension = {int(collection.dimension)})"
    )


def collection_info(collection: Collection) -> CollectionInfo:
    return CollectionInfo(
        id=collection.id,
        name=collection.name,
        owner_id=collection.owner_id,
        description=collection.description,
        embedding_model=collection.embedding_model,
        dimension=collection.dimension,
        distance=collection.distance,
        hnsw_m=collection.hnsw_m,
        hnsw_ef_construction=collection.hnsw_ef_construction,
        default_ef_search=collection.default_ef_search,
        record_count=collection.record_count,
        metadata_fields=tuple(collection.metadata_fields),
        reembedding_to=collection.pending_model or None,
        created_at=collection.created_at,
        updated_at=collection.updated_at,
        index_type=collection.index_type,
    )


def vector_validate(
    value: Any, *, dimension: int, field: str = "vector", half: bool = False
) -> np.ndarray:
    """``value`` as float32, or a 400 naming ``field``: wrong length, NaN, inf, non-numbers;
    with ``half`` (a half-precision index), a value beyond ±65504 too."""
    if not isinstance(value, list | tuple | np.ndarray):
        raise InvalidInputError(field, "A vector is a list of numbers.")
    if len(value) != dimension:
        raise InvalidInputError(
            field, f"The vector has {len(value)} dimensions; the collection takes {dimension}."
        )
    if not isinstance(value, np.ndarray) and any(
        isinstance(x, bool) or not isinstance(x, int | float) for x in value
    ):
        raise InvalidInputError(field, "A vector holds numbers only.")
    with np.errstate(over="ignore"):
        array = np.asarray(value, dtype=np.float32)
    if not np.isfinite(array).all():
        raise InvalidInputError(
            field, "The vector holds NaN or an infinite value (or one too large for float32)."
        )
    if half and array.size and float(np.abs(array).max()) > HALF_MAX:
        raise InvalidInputError(
            field, f"The collection's index holds values from -{HALF_MAX:g} to {HALF_MAX:g}."
        )
    return array


def half_index(collection: Collection) -> bool:
    return collection.index_type == IndexType.HALFVEC


def vector_literal(array: np.ndarray) -> str:
    """pgvector's text form. Nine significant digits give back every float32 exactly,
    in about half the characters of a float64 repr."""
    return "[" + ",".join([f"{x:.9g}" for x in array.tolist()]) + "]"
