"""Read queries of vector collections: list, get, and search (vector, text, hybrid).

Vector search reads the collection's partial HNSW index with ``hnsw.ef_search`` set for
the query and pgvector's iterative scans on, so a filtered query keeps scanning until it
has ``k`` matches. A filter that matches few rows is answered exactly instead (a bounded
count decides): the exact sort is then both cheaper and perfect, where a graph walk would
visit many rows to find a handful. If the index still yields fewer than ``k`` hits while
more rows match, the query is answered exactly too, so a filtered search always returns
``min(k, matching rows)``.

Hybrid search fuses the vector and full-text rankings by reciprocal rank fusion,
``score = sum(weight / (60 + rank))``, optionally re-ranked by maximal marginal relevance.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from django.db import connection

from lumina.kernel.lazy import LazyImport
from lumina.memory.embedding import embed_texts
from lumina.memory.errors import InvalidInputError, RecordNotFoundError
from lumina.memory.models.vectors import Collection, Distance, VectorRecord
from lumina.memory.selectors.vector_access import (
    OPERATOR,
    collection_cached,
    collection_forget,
    collection_guard,
    collection_info,
    collection_resolve,
    half_index,
    vector_literal,
    vector_validate,
)
from lumina.memory.selectors.vector_filters import compile_filter
from lumina.memory.vector_types import (
    CollectionInfo,
    RetrieverScore,
    SearchResult,
    VectorHit,
    VectorItem,
)
from lumina.security.api import Actor, require

np = LazyImport("numpy")  # loaded with the first computation, not with the server

# Raw SQL here only interpolates the table name, slot numbers (0/1), dimensions and
# collection ids from the database; every value from a caller is a parameter.

MODES = ("vector", "text", "hybrid")
MAX_K = 1000
MAX_EF_SEARCH = 1000  # pgvector's largest hnsw.ef_search
RRF_K = 60
# A filter matching at most this many rows is answered by an exact sort.
EXACT_BELOW = 2000
# How far an iterative index scan may go before giving up (pgvector's default is 20000).
MAX_SCAN_TUPLES = 100_000
# The plan chosen for a filter is remembered this long (per process): the same filter
# again skips the count. An index walk that comes up short still falls back to exact.
PLAN_SECONDS = 5.0
_plans: dict[tuple, tuple[float, str]] = {}


# --- Collections and records ------------------------------------------------------------


def collection_list(*, actor: Actor, everyone: bool = False) -> list[CollectionInfo]:
    """The caller's collections; with ``everyone`` (``memory.manage``) all of them."""
    require(actor, "memory.read")
    queryset = Collection.objects.all()
    if everyone:
        require(actor, "memory.manage")
    else:
        queryset = queryset.filter(owner_id=actor.user_id)
    return [collection_info(c) for c in queryset.order_by("name", "id")]


def collection_get(*, actor: Actor, ref: str | uuid.UUID) -> CollectionInfo:
    return collection_info(collection_resolve(actor=actor, ref=ref, action="memory.read"))


def _parse_vector(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    return tuple(float(x) for x in text.strip("[]").split(","))


def vectors_get(
    *, actor: Actor, ref: str | uuid.UUID, ids: list[str], include_vectors: bool = False
) -> list[VectorItem]:
    """The records with these ids, in the order asked; a missing id is a 404 naming it."""
    collection = collection_resolve(actor=actor, ref=ref, action="memory.read")
    if not isinstance(ids, list) or not ids or len(ids) > MAX_K:
        raise InvalidInputError("ids", f"Give 1 to {MAX_K} ids.")
    if any(not isinstance(value, str) or "\x00" in value for value in ids):
        raise InvalidInputError("ids", "Ids are strings without NUL characters.")
    slot = collection.active_slot
    rows = {
        row["external_id"]: row
        for row in VectorRecord.objects.filter(collection=collection, external_id__in=ids).values(
            "external_id", "text", "metadata", f"vector_{slot}", "created_at", "updated_at"
        )
    }
    items = []
    for external_id in ids:
        row = rows.get(external_id)
        if row is None:
            raise RecordNotFoundError(external_id[:200])
        vector = row[f"vector_{slot}"]
        items.append(
            VectorItem(
                id=external_id,
                text=row["text"],
                metadata=row["metadata"],
                vector=tuple(float(x) for x in vector)
                if include_vectors and vector is not None
                else None,
                created_at=row["created_at"],
                updated_at=row["updated_at"],
            )
        )
    return items


# --- Search -----------------------------------------------------------------------------


def _int(field: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInputError(field, f"'{field}' is a whole number from {low} to {high}.")
    return value


def _weight(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise InvalidInputError(field, f"'{field}' is a number from 0 to 100.")
    return float(value)


def _similarity(distance: str, value: float) -> float:
    if distance == Distance.COSINE:
        return 1.0 - value
    if distance == Distance.IP:
        return -value
    return -value


Row = tuple[int, float, str, str, Any]  # pk, distance or rank, external id, text, metadata


def _rows(cursor, sql: str, params: list[Any]) -> list[Row]:
    """Rows of the one statement in ``sql`` that returns rows (the others set and reset
    settings): one round trip whatever the number of statements."""
    cursor.execute(sql, params)
    while cursor.description is None:
        if not cursor.cursor.nextset():
            return []
    rows = cursor.fetchall()
    while cursor.cursor.nextset():
        pass
    return [
        (pk, float(value), external_id, text, json.loads(meta) if isinstance(meta, str) else meta)
        for pk, value, external_id, text, meta in rows
    ]


def _vector_ranking(
    collection: Collection,
    query: np.ndarray,
    *,
    limit: int,
    ef_search: int,
    condition: str,
    params: list[Any],
    filtered: bool,
) -> tuple[list[Row], str]:
    """Rows nearest first with their distance, and the plan used: "hnsw" or "exact".

    Settings and the query travel as one multi-statement string: outside a transaction
    it runs as one implicit transaction, so ``SET LOCAL`` lasts exactly that long; inside
    one, the trailing statements put the settings back.
    """
    table = VectorRecord._meta.db_table
    slot, dimension = collection.active_slot, collection.dimension
    operator = OPERATOR[collection.distance]
    column = f"vector_{slot}::vector({dimension})"
    kind = collection.index_type  # what the index stores: halfvec or vector
    indexed = f"vector_{slot}::{kind}({dimension})"
    where = f"collection_id = '{collection.id}'::uuid AND vector_{slot} IS NOT NULL AND {condition}"
    literal = vector_literal(query)
    with connection.cursor() as cursor:
        plan = "hnsw"
        if filtered:
            key = (collection.id, where, tuple(str(p) for p in params))
            remembered = _plans.get(key)
            if remembered is not None and time.monotonic() - remembered[0] < PLAN_SECONDS:
                plan = remembered[1]
            else:
                cursor.execute(
                    f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {where} LIMIT %s) AS m",  # noqa: S608
                    [*params, EXACT_BELOW + 1],
                )
                if cursor.fetchone()[0] <= EXACT_BELOW:
                    plan = "exact"
                if len(_plans) >= 4096:
                    _plans.clear()
                _plans[key] = (time.monotonic(), plan)
        if plan == "hnsw":
            # A walk yields at most ef_search rows: it is widened to the rows asked for
            # (pgvector caps ef_search at 1000; beyond that the scan goes on iteratively).
            walk = min(max(int(ef_search), limit), MAX_EF_SEARCH)
            settings = {"hnsw.ef_search": str(walk)}
            if limit > walk and not filtered:
                settings["hnsw.iterative_scan"] = "relaxed_order"
            if filtered:
                # The planner underrates the graph walk under a filter; the walk is the
                # plan we want once the filter is known not to be selective.
                settings.update(
                    {
                        "hnsw.iterative_scan": "relaxed_order",
                        "hnsw.max_scan_tuples": str(MAX_SCAN_TUPLES),
                        "enable_seqscan": "off",
                        "enable_bitmapscan": "off",
                    }
                )
            before = "".join(f"SET LOCAL {name} = {value}; " for name, value in settings.items())
            after = (
                "".join(f"; SET LOCAL {name} TO DEFAULT" for name in settings)
                if connection.in_atomic_block
                else ""
            )
            # The index orders by its own (half-precision) distance, and relaxed_order may
            # hand rows back slightly out of order: the hits are scored on the stored
            # vectors and sorted again.
            # The query vector travels once; the index reads it as an init plan's value.
            rows = _rows(
                cursor,
                f"{before}WITH q AS (SELECT %s::vector({dimension}) AS v) "  # noqa: S608
                f"SELECT id, {column} {operator} (SELECT v FROM q) AS distance, "
                f"external_id, text, metadata FROM ("
                f"SELECT id, vector_{slot}, external_id, text, metadata FROM {table} "
                f"WHERE {where} ORDER BY {indexed} {operator} "
                f"(SELECT v::{kind}({dimension}) FROM q) LIMIT %s) AS hits "
                f"ORDER BY distance, id{after}",
                [literal, *params, limit],
            )
            if len(rows) < limit and filtered:
                cursor.execute(
                    f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {where} LIMIT %s) AS m",  # noqa: S608
                    [*params, limit],
                )
                if cursor.fetchone()[0] > len(rows):
                    plan = "exact"
            if plan == "hnsw":
                return rows, plan
        # Adding zero keeps the planner off the index: an exact sort of the matches.
        return _rows(
            cursor,
            f"SELECT id, ({column} {operator} %s::vector({dimension})) + 0 AS distance, "  # noqa: S608
            f"external_id, text, metadata FROM {table} WHERE {where} "
            f"ORDER BY distance, id LIMIT %s",
            [literal, *params, limit],
        ), plan


def _text_ranking(
    collection: Collection, text: str, *, limit: int, condition: str, params: list[Any]
) -> list[Row]:
    """Rows best first with their ts_rank_cd. Any query word may match (OR), so a question
    phrased in full still finds the records that share some of its words."""
    table = VectorRecord._meta.db_table
    with connection.cursor() as cursor:
        return _rows(
            cursor,
            f"SELECT r.id, ts_rank_cd(r.search, q.query) AS rank, r.external_id, r.text, "  # noqa: S608
            f"r.metadata FROM {table} r, "
            f"(SELECT NULLIF(replace(plainto_tsquery('english', %s)::text, ' & ', ' | '), '')"
            f"::tsquery AS query) q "
            f"WHERE r.collection_id = %s AND r.search @@ q.query AND {condition} "
            f"ORDER BY rank DESC, r.id LIMIT %s",
            [text, collection.id, *params, limit],
        )


def _vectors_of(collection: Collection, ids: list[int]) -> dict[int, np.ndarray]:
    slot = collection.active_slot
    rows = VectorRecord.objects.filter(id__in=ids).values_list("id", f"vector_{slot}")
    return {pk: np.asarray(vector, dtype=np.float32) for pk, vector in rows}


def _mmr(
    candidates: list[int],
    relevance: Mapping[int, float],
    vectors: Mapping[int, np.ndarray],
    *,
    k: int,
    lambda_: float,
) -> list[tuple[int, float]]:
    """Maximal marginal relevance: each pick trades relevance (scaled to 0..1) against
    cosine similarity to what is already picked."""
    top = max(relevance.values()) or 1.0
    normal = {}
    for pk in candidates:
        vector = vectors[pk]
        norm = float(np.linalg.norm(vector)) or 1.0
        normal[pk] = vector / norm
    chosen: list[tuple[int, float]] = []
    left = list(candidates)
    while left and len(chosen) < k:
        best, best_score = None, -np.inf
        for pk in left:
            redundancy = max((float(normal[pk] @ normal[c]) for c, _ in chosen), default=0.0)
            score = lambda_ * relevance[pk] / top - (1 - lambda_) * redundancy
            if score > best_score:
                best, best_score = pk, score
        chosen.append((best, float(best_score)))
        left.remove(best)
    return chosen


def vectors_search(*, actor: Actor, ref: str | uuid.UUID, **options: Any) -> SearchResult:
    """The ``k`` best records for a text ``query`` and/or a ``vector`` (see ``_search``).

    The collection's settings come from this process's cache when fresh; the statement
    checks them (``collection_guard``), and an empty answer or an unknown filter field
    re-reads the collection before answering.
    """
    collection, cached = collection_cached(actor=actor, ref=ref)
    if cached:
        result = None
        try:
            result = _search(actor=actor, collection=collection, guard=True, **options)
        except InvalidInputError as error:
            if not error.field.startswith("filter"):
                raise
        if result is not None and result.hits:
            return result
        fresh = collection_resolve(actor=actor, ref=ref, action="memory.read")
        collection_forget(fresh.id)
        if result is not None and _settings(fresh) == _settings(collection):
            return result
        collection = fresh
    return _search(actor=actor, collection=collection, guard=False, **options)


def _settings(collection: Collection) -> tuple:
    return (
        collection.id,
        collection.active_slot,
        collection.dimension,
        collection.distance,
        collection.embedding_model,
        tuple(collection.metadata_fields),
    )


def _search(
    *,
    actor: Actor,
    collection: Collection,
    guard: bool,
    query: str | None = None,
    vector: Any = None,
    k: int = 10,
    mode: str | None = None,
    filter: Mapping[str, Any] | None = None,
    ef_search: int | None = None,
    weights: Mapping[str, Any] | None = None,
    mmr: bool = False,
    mmr_lambda: float = 0.5,
    candidates: int | None = None,
) -> SearchResult:
    """The ``k`` best records for a text ``query`` and/or a ``vector``.

    ``mode``: ``vector`` (the vector, or the query embedded with the collection's model),
    ``text`` (full text only) or ``hybrid`` (both, fused by RRF with ``weights``
    ``{"vector": w, "text": w}``); by default hybrid when there is a query, else vector.
    ``mmr`` re-ranks the fused candidates for diversity. Every hit carries each
    retriever's rank and score.
    """
    k = _int("k", k, 1, MAX_K)
    if query is not None and (not isinstance(query, str) or not query.strip()):
        raise InvalidInputError("query", "The query is a non-empty text.")
    if query is not None and len(query) > 10_000:
        raise InvalidInputError("query", "At most 10,000 characters.")
    if query is not None and "\x00" in query:
        raise InvalidInputError("query", "The query may not contain NUL characters.")
    mode = mode or ("hybrid" if query is not None else "vector")
    if mode not in MODES:
        raise InvalidInputError("mode", f"Use one of {', '.join(MODES)}.")
    if query is None and vector is None:
        raise InvalidInputError("query", "Give a query text or a vector.")
    if mode in ("text", "hybrid") and query is None:
        raise InvalidInputError("query", f"A {mode} search needs a query text.")
    ef = _int(
        "ef_search",
        collection.default_ef_search if ef_search is None else ef_search,
        1,
        MAX_EF_SEARCH,
    )
    if weights is not None and not isinstance(weights, Mapping):
        raise InvalidInputError("weights", 'Weights are an object: {"vector": w, "text": w}.')
    weights = dict(weights or {})
    unknown = set(weights) - {"vector", "text"}
    if unknown:
        raise InvalidInputError(f"weights.{sorted(unknown)[0]}", "Weights are for vector, text.")
    weight = {
        name: _weight(f"weights.{name}", weights.get(name, 1.0)) for name in ("vector", "text")
    }
    if isinstance(mmr_lambda, bool) or not isinstance(mmr_lambda, int | float):
        raise InvalidInputError("mmr_lambda", "A number from 0 to 1.")
    if not 0 <= mmr_lambda <= 1:
        raise InvalidInputError("mmr_lambda", "A number from 0 to 1.")
    pool = _int("candidates", candidates or max(4 * k, 40), k, 4 * MAX_K)
    compiled = compile_filter(filter, known_fields=collection.metadata_fields)
    condition = compiled.sql if not guard else f"{compiled.sql} AND {collection_guard(collection)}"

    query_vector = None
    if mode in ("vector", "hybrid"):
        if vector is not None:
            query_vector = vector_validate(
                vector, dimension=collection.dimension, half=half_index(collection)
            )
        elif collection.embedding_model:
            embedded = embed_texts([query], actor=actor, model=collection.embedding_model)[0]
            query_vector = vector_validate(
                embedded,
                dimension=collection.dimension,
                field="embedding_model",
                half=half_index(collection),
            )
        elif mode == "vector":
            raise InvalidInputError(
                "vector", "This collection has no embedding model: give the query vector."
            )

    depth = k if mode == "vector" and not mmr else pool
    rankings: dict[str, list[Row]] = {}
    plan = "none"
    if query_vector is not None:
        rankings["vector"], plan = _vector_ranking(
            collection,
            query_vector,
            limit=depth,
            ef_search=ef,
            condition=condition,
            params=compiled.params,
            filtered=bool(filter),
        )
    if mode in ("text", "hybrid"):
        rankings["text"] = _text_ranking(
            collection,
            query,
            limit=k if mode == "text" and not mmr else pool,
            condition=condition,
            params=compiled.params,
        )

    per_record: dict[int, dict[str, RetrieverScore]] = {}
    records: dict[int, Row] = {}
    for name, ranking in rankings.items():
        for rank, row in enumerate(ranking, start=1):
            pk, value = row[0], row[1]
            records[pk] = row
            if name == "vector":
                score = RetrieverScore(
                    rank=rank, score=_similarity(collection.distance, value), distance=value
                )
            else:
                score = RetrieverScore(rank=rank, score=value)
            per_record.setdefault(pk, {})[name] = score

    fused = {
        pk: sum(weight[name] / (RRF_K + score.rank) for name, score in scores.items())
        for pk, scores in per_record.items()
    }
    if len(rankings) == 1:
        only = next(iter(rankings))
        order = [row[0] for row in rankings[only]]
        final = {pk: per_record[pk][only].score for pk in order}
    else:
        order = sorted(fused, key=lambda pk: (-fused[pk], pk))
        final = fused
    mmr_scores: dict[int, float] = {}
    if mmr and order:
        relevance = {pk: fused[pk] for pk in order}
        picked = _mmr(
            order, relevance, _vectors_of(collection, order), k=k, lambda_=float(mmr_lambda)
        )
        order = [pk for pk, _ in picked]
        mmr_scores = dict(picked)
    order = order[:k]

    hits = tuple(
        VectorHit(
            id=records[pk][2],
            text=records[pk][3],
            metadata=records[pk][4],
            score=float(final[pk]),
            retrievers=per_record[pk],
            rrf=float(fused[pk]) if len(rankings) > 1 else None,
            mmr=mmr_scores.get(pk),
        )
        for pk in order
    )
    return SearchResult(
        collection=collection.name,
        mode=mode,
        hits=hits,
        vector_plan=plan,
        ef_search=ef if query_vector is not None else None,
    )


def collection_stats() -> list[dict[str, Any]]:
    """Per collection: records, the index's size, and re-embedding progress (for the CLI)."""
    rows = []
    for collection in Collection.objects.order_by("name", "id"):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_relation_size(c.oid) FROM pg_class c WHERE c.relname = %s",
                [f"memory_vec_{collection.id.hex}_{collection.active_slot}"],
            )
            size = cursor.fetchone()
        pending = None
        if collection.pending_model:
            idle = 1 - collection.active_slot
            pending = VectorRecord.objects.filter(
                collection=collection, **{f"vector_{idle}__isnull": True}
            ).count()
        rows.append(
            {
                "id": str(collection.id),
                "name": collection.name,
                "owner_id": str(collection.owner_id),
                "model": collection.embedding_model,
                "dimension": collection.dimension,
                "distance": collection.distance,
                "records": collection.record_count,
                "index_bytes": size[0] if size else None,
                "reembedding_to": collection.pending_model or None,
                "reembed_remaining": pending,
            }
        )
    return rows
