"""Memory search: hybrid (default), vector, text or graph, time-aware, every hit explained.

Retrievers, one SQL statement each over the same eligible set (owner, scope, layers,
filters, and what was believed: now, or ``as_of``):

- ``vector``: cosine similarity to the question's embedding through the HNSW index, with
  pgvector's iterative scan so filters still leave enough candidates;
- ``text``: PostgreSQL full text (GIN), any of the question's words, ranked by cover
  density;
- ``time``: when the question names a period ("last spring", "in 2023", "before the
  move"), the vector ranking again, restricted to what was said (or held true) then.

They are fused by relative score fusion (each retriever's scores over its best, averaged
with per-query weights) into a relevance in [0, 1]; each hit still reports its rank in
every retriever. The score is relevance × recency × importance × time: recency halves with the
scope's half-life down to a floor (an old memory still answers a question about it), a
period in the question replaces recency by whether the record falls in that period, and a
fact that no longer holds counts less unless the question is about its time. ``graph``
mode hands the hybrid ranking to the entity graph (``graph_search``), which pulls in
connected records from other sessions.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime as dt
import json
import math
import uuid
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from django.db import connection, transaction
from django.db.models import BooleanField, ExpressionWrapper, F, Func, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone
from pgvector.django import CosineDistance

from lumina.memory.errors import InvalidInputError
from lumina.memory.models.records import TEXT_SEARCH_CONFIG, Layer, MemoryRecord
from lumina.memory.records_types import MemoryHit, MemorySearchResult, TimeWindow
from lumina.memory.selectors.record_access import READ, owner_resolve
from lumina.memory.selectors.records import record_dto
from lumina.memory.services import policy
from lumina.memory.services.record_embedding import embed_texts
from lumina.memory.services.timeparse import time_windows
from lumina.memory.services.vector_filters import compile_filter
from lumina.security.api import Actor

HYBRID, VECTOR, TEXT, GRAPH = "hybrid", "vector", "text", "graph"
MODES = (HYBRID, VECTOR, TEXT, GRAPH)
RETRIEVERS = ("vector", "text", "time")
MAX_K = 100
MAX_QUERY = 4000
EF_SEARCH = 100
RECENCY_FLOOR = 0.8
OUTSIDE_PERIOD = 0.5
HELD_IN_PERIOD = 0.85  # a fact that held then, though said at another time
NO_LONGER_TRUE = 0.8
SEARCH_LAYERS = (Layer.WORKING, Layer.EPISODIC, Layer.SEMANTIC)
# Embeds questions while the text retrievers run (the embedder holds no database handle).
_embedder = ThreadPoolExecutor(max_workers=2, thread_name_prefix="memory-search-embed")
_TSQUERY = f"replace(plainto_tsquery('{TEXT_SEARCH_CONFIG}', %s)::text, ' & ', ' | ')::tsquery"


@dataclasses.dataclass(frozen=True)
class SearchQuery:
    query: str
    k: int = 10
    mode: str = HYBRID
    layers: tuple[str, ...] = SEARCH_LAYERS
    session_id: str | None = None
    agent_id: str | None = None
    metadata: Mapping[str, Any] | None = None  # the filter language of vector collections
    occurred_after: dt.datetime | None = None
    occurred_before: dt.datetime | None = None
    as_of: dt.datetime | None = None
    valid_at: dt.datetime | None = None
    now: dt.datetime | None = None  # what "last spring" is relative to
    weights: Mapping[str, float] | None = None
    time_aware: bool = True
    ef_search: int = EF_SEARCH


def _check(q: SearchQuery) -> None:
    if not isinstance(q.query, str) or not q.query.strip():
        raise InvalidInputError("query", "The query must not be empty.")
    if "\x00" in q.query:
        raise InvalidInputError("query", "Must not contain NUL characters.")
    if q.metadata is not None and "\\u0000" in json.dumps(q.metadata, default=str):
        raise InvalidInputError("metadata", "Must not contain NUL characters.")
    if len(q.query) > MAX_QUERY:
        raise InvalidInputError("query", f"At most {MAX_QUERY} characters.")
    if q.mode not in MODES:
        raise InvalidInputError("mode", f"One of {', '.join(MODES)}.")
    if not 1 <= q.k <= MAX_K:
        raise InvalidInputError("k", f"Between 1 and {MAX_K}.")
    unknown = [layer for layer in q.layers if layer not in Layer.values]
    if unknown or not q.layers:
        raise InvalidInputError("layers", f"Layers among {', '.join(Layer.values)}.")
    for name, weight in (q.weights or {}).items():
        if name not in RETRIEVERS:
            raise InvalidInputError("weights", f"Unknown retriever '{name}'.")
        if not isinstance(weight, int | float) or not math.isfinite(weight) or weight < 0:
            raise InvalidInputError("weights", f"The weight of '{name}' must be ≥ 0.")
    if (
        q.occurred_after is not None
        and q.occurred_before is not None
        and q.occurred_after >= q.occurred_before
    ):
        raise InvalidInputError("occurred_after", "Must be before occurred_before.")
    if not 10 <= q.ef_search <= 1000:
        raise InvalidInputError("ef_search", "Between 10 and 1000.")


def _known_metadata_fields(owner_id: uuid.UUID) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT jsonb_object_keys(metadata) FROM memory_memoryrecord "
            "WHERE owner_id = %s AND jsonb_typeof(metadata) = 'object'",
            [owner_id],
        )
        return {row[0] for row in cursor.fetchall()}


def eligible(owner_id: uuid.UUID, q: SearchQuery) -> QuerySet[MemoryRecord]:
    """The records a search may return: the owner's, in scope, believed at the time asked."""
    rows = MemoryRecord.objects.filter(owner_id=owner_id, layer__in=list(q.layers))
    if q.session_id is not None:
        rows = rows.filter(session_id=q.session_id)
    if q.agent_id is not None:
        rows = rows.filter(agent_id=q.agent_id)
    if q.occurred_after is not None:
        rows = rows.filter(occurred_at__gte=q.occurred_after)
    if q.occurred_before is not None:
        rows = rows.filter(occurred_at__lt=q.occurred_before)
    if q.as_of is not None:
        rows = rows.filter(recorded_at__lte=q.as_of).filter(
            Q(superseded_at__isnull=True) | Q(superseded_at__gt=q.as_of),
            Q(expired_at__isnull=True) | Q(expired_at__gt=q.as_of),
        )
    else:
        rows = rows.filter(superseded_at__isnull=True, expired_at__isnull=True)
    if q.valid_at is not None:
        rows = rows.filter(
            Q(valid_from__isnull=True) | Q(valid_from__lte=q.valid_at),
            Q(valid_to__isnull=True) | Q(valid_to__gt=q.valid_at),
        )
    if q.metadata:
        compiled = compile_filter(
            dict(q.metadata), known_fields=_known_metadata_fields(owner_id), where="metadata"
        )
        rows = rows.filter(
            ExpressionWrapper(
                RawSQL(compiled.sql, compiled.params),  # noqa: S611 (compiled with parameters)
                output_field=BooleanField(),
            )
        )
    return rows


def _in_window(window: TimeWindow) -> Q:
    """Said in the window, or (facts) held true during some of it."""
    said = Q()
    held = Q(valid_from__isnull=False)
    if window.start is not None:
        said &= Q(occurred_at__gte=window.start)
        held &= Q(valid_to__isnull=True) | Q(valid_to__gt=window.start)
    if window.end is not None:
        said &= Q(occurred_at__lt=window.end)
        held &= Q(valid_from__lt=window.end)
    return said | held


def _vector_ranking(
    rows: QuerySet[MemoryRecord], embedding: Sequence[float], limit: int
) -> list[tuple[uuid.UUID, float]]:
    ranked = (
        rows.filter(embedding__isnull=False)
        .annotate(distance=CosineDistance("embedding", list(embedding)))
        .order_by("distance")
        .values_list("id", "distance")[:limit]
    )
    # Iterative scans return rows in relaxed order: sort them exactly.
    found = sorted(((rid, 1.0 - float(d)) for rid, d in ranked), key=lambda x: -x[1])
    return found


def _text_ranking(
    rows: QuerySet[MemoryRecord], text: str, limit: int
) -> list[tuple[uuid.UUID, float]]:
    """Records sharing any of the question's words, rarer words weighing more.

    PostgreSQL's ranking has no document frequency, so "Sam" (in every other turn) would
    count as much as "hiking"; each word here weighs ln(1 + matches / matches of it),
    counted among the records that match any word, times the cover density rank."""
    eligible_sql, eligible_params = rows.values("id", "search").query.sql_with_params()
    sql = f"""
        WITH words AS (
            SELECT DISTINCT quote_literal(lexeme)::tsquery AS word
            FROM unnest(tsvector_to_array(to_tsvector('{TEXT_SEARCH_CONFIG}', %s))) AS lexeme
        ),
        matches AS (
            SELECT e.id, e.search FROM ({eligible_sql}) AS e WHERE e.search @@ {_TSQUERY}
        ),
        weights AS (
            SELECT words.word, ln(1 + (SELECT count(*) FROM matches)::float / count(*)) AS idf
            FROM matches JOIN words ON matches.search @@ words.word
            GROUP BY words.word
        )
        SELECT matches.id,
               sum(weights.idf) * (1 + ts_rank_cd(matches.search, {_TSQUERY}, 32)) AS score
        FROM matches JOIN weights ON matches.search @@ weights.word
        GROUP BY matches.id, matches.search
        ORDER BY score DESC, matches.id
        LIMIT %s
    """  # noqa: S608 (constants and the ORM's parameterised SQL)
    with connection.cursor() as cursor:
        cursor.execute(sql, [text, *eligible_params, text, text, limit])
        return [(rid, float(score)) for rid, score in cursor.fetchall()]


def _resolve_anchors(
    owner_id: uuid.UUID, windows: list[TimeWindow], base: QuerySet[MemoryRecord]
) -> list[TimeWindow]:
    """ "before the move": when the best text match of "move" was said."""
    resolved = []
    for window in windows:
        if not window.anchor:
            resolved.append(window)
            continue
        best = _text_ranking(base, window.anchor, 1)
        if not best:
            continue
        said = MemoryRecord.objects.filter(id=best[0][0]).values_list("occurred_at", flat=True)[0]
        if window.kind == "before":
            resolved.append(dataclasses.replace(window, end=said))
        else:
            resolved.append(dataclasses.replace(window, start=said))
    return resolved


def _recency(age_days: float, half_life_days: float) -> float:
    return RECENCY_FLOOR + (1 - RECENCY_FLOOR) * 0.5 ** (max(age_days, 0.0) / half_life_days)


def _window_text(window: TimeWindow) -> str:
    start = window.start.date().isoformat() if window.start else "…"
    end = window.end.date().isoformat() if window.end else "…"
    return f"'{window.phrase}' ({start} – {end})"


def _said_in(row: MemoryRecord, window: TimeWindow) -> bool:
    moment = row.occurred_at
    return (window.start is None or moment >= window.start) and (
        window.end is None or moment < window.end
    )


def _touches(row: MemoryRecord, window: TimeWindow) -> bool:
    if _said_in(row, window):
        return True
    if row.valid_from is None:
        return False
    starts_before_end = window.end is None or row.valid_from < window.end
    ends_after_start = window.start is None or row.valid_to is None or row.valid_to > window.start
    return starts_before_end and ends_after_start


class _Scoring(NamedTuple):
    """What scoring and explaining a candidate reads of its record."""

    id: uuid.UUID
    layer: str
    agent_id: str
    session_id: str
    speaker: str
    occurred_at: dt.datetime
    importance: float
    valid_from: dt.datetime | None
    valid_to: dt.datetime | None
    provenance_count: int | None
    has_embedding: bool

    @classmethod
    def of(cls, rows: Iterable[tuple]) -> Iterator[_Scoring]:
        return (cls._make(row) for row in rows)


# psycopg connection -> the ef_search its session is set to (see _hnsw_scan).
_session_ef_search: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def _hnsw_scan(ef_search: int, *, needed: bool) -> Iterator[None]:
    """HNSW scans with ``ef_search`` candidates and iterative scans (so filters still leave
    k rows). Outside a transaction the settings go on the connection's session once,
    saving a transaction and a statement per search; other HNSW queries set their own
    with ``SET LOCAL``. Inside one (tests, callers' atomic blocks), ``SET LOCAL``: a
    rollback would undo a session setting without this process knowing."""
    if not needed:
        yield
        return
    settings = f"hnsw.ef_search = {int(ef_search)}; SET {{}}hnsw.iterative_scan = relaxed_order"
    if connection.in_atomic_block:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL " + settings.format("LOCAL "))
            yield
        return
    connection.ensure_connection()
    raw = connection.connection
    if _session_ef_search.get(raw) != ef_search:
        with connection.cursor() as cursor:
            cursor.execute("SET " + settings.format(""))
        _session_ef_search[raw] = ef_search
    yield


def _accessed(record_ids: list[uuid.UUID]) -> None:
    """Count one more access of each record: one statement on the narrow access table.

    On its own (no caller's transaction) the count commits without waiting for the WAL
    flush: a crash may lose the last counts of a fraction of a second, never consistency,
    and the search does not wait for the disk."""
    relaxed = "" if connection.in_atomic_block else "SET LOCAL synchronous_commit = off; "
    with connection.cursor() as cursor:
        cursor.execute(
            f"{relaxed}INSERT INTO memory_memoryaccess (record_id, count, last_accessed_at) "
            "SELECT unnest(%s::uuid[]), 1, %s "
            "ON CONFLICT (record_id) DO UPDATE SET count = memory_memoryaccess.count + 1, "
            "last_accessed_at = EXCLUDED.last_accessed_at",
            [record_ids, timezone.now()],
        )


def memory_search(
    *, actor: Actor, search: SearchQuery, user_id: uuid.UUID | None = None
) -> MemorySearchResult:
    owner_id = owner_resolve(actor, action=READ, user_id=user_id)
    _check(search)
    return search_records(owner_id=owner_id, search=search)


def search_records(*, owner_id: uuid.UUID, search: SearchQuery) -> MemorySearchResult:
    """The search itself, for an owner the caller was already authorised for."""
    q = search
    now = q.now or q.as_of or timezone.now()
    windows: list[TimeWindow] = []
    text = q.query.strip()
    if q.time_aware:
        try:
            windows, remaining = time_windows(text, now=now)
        except (ValueError, OverflowError):
            # A reference time at the edge of the calendar: no period can be read from it.
            windows, remaining = [], text
        text = remaining or text
    weights = {"vector": 1.0, "text": 1.0, "time": 1.0, **(q.weights or {})}
    pending = None
    if q.mode in (HYBRID, VECTOR, GRAPH):
        # The question is embedded on another thread (another core) while the text
        # retrievers run here.
        pending = _embedder.submit(contextvars.copy_context().run, embed_texts, [q.query.strip()])
    base = eligible(owner_id, q)
    if windows:
        windows = _resolve_anchors(owner_id, windows, base)
    depth = max(q.k * 4, 40)

    text_ranking = None
    if q.mode in (HYBRID, TEXT, GRAPH) and weights["text"] > 0:
        text_ranking = _text_ranking(base, text, depth)
    embedding = pending.result()[0] if pending is not None else None
    rankings: dict[str, list[tuple[uuid.UUID, float]]] = {}
    with _hnsw_scan(int(max(q.ef_search, depth)), needed=embedding is not None):
        if embedding is not None and weights["vector"] > 0:
            rankings["vector"] = _vector_ranking(base, embedding, depth)
        if text_ranking is not None:
            rankings["text"] = text_ranking
        bounded = [w for w in windows if w.start is not None or w.end is not None]
        if bounded and weights["time"] > 0 and q.mode != TEXT:
            period = Q()
            for window in bounded:
                period |= _in_window(window)
            in_period = base.filter(period)
            if embedding is not None:
                rankings["time"] = _vector_ranking(in_period, embedding, depth)
            else:
                rankings["time"] = _text_ranking(in_period, text, depth)

    # Relative score fusion: each retriever's scores divided by its best, weighted and
    # averaged. Unlike rank fusion it keeps how much better the best match is: a turn that
    # alone has the question's rare word is not levelled with ones sharing only a name.
    fused: dict[uuid.UUID, float] = {}
    components: dict[uuid.UUID, dict[str, float]] = {}
    total_weight = sum(weights[name] for name in rankings)
    for name, ranking in rankings.items():
        weight = weights[name]
        top = max((score for _, score in ranking), default=0.0)
        previous, rank = None, 0
        for position, (record_id, score) in enumerate(ranking, start=1):
            if score != previous:  # ties share a rank
                previous, rank = score, position
            share = max(score, 0.0) / top if top > 0 else 0.0
            fused[record_id] = fused.get(record_id, 0.0) + weight * share
            parts = components.setdefault(record_id, {})
            parts[name] = round(score, 6)
            parts[f"{name}_rank"] = rank
    best = total_weight or 1.0

    graph_info: dict[uuid.UUID, Any] = {}
    order = sorted(fused, key=lambda r: (-fused[r], str(r)))
    if q.mode == GRAPH and order:
        from lumina.memory.services.graph_search import graph_search

        expanded = graph_search(
            owner_id=owner_id,
            hybrid=order,
            eligible=base,
            query_text=q.query,
            query_embedding=embedding,
            k=depth,
        )
        top = max((g.graph_score for g in expanded), default=0.0) or 1.0
        graph_fused = {}
        for g in expanded:
            graph_info[g.record_id] = g
            # Half hybrid relevance, half the graph's (similarity lifted by entity links):
            # a record only the graph found competes on its links and meaning.
            share = fused.get(g.record_id, 0.0) / best
            graph_fused[g.record_id] = (share + g.graph_score / top) / 2 * best
            parts = components.setdefault(g.record_id, {})
            parts["graph"] = round(g.graph_score, 6)
            parts["graph_link"] = round(g.link, 6)
        fused = graph_fused

    # Every candidate is scored from a few narrow columns; only the k best are read whole.
    rows = {
        row.id: row
        for row in _Scoring.of(
            MemoryRecord.objects.filter(id__in=list(fused))
            .annotate(
                provenance_count=Func(F("provenance"), function="cardinality"),
                has_embedding=ExpressionWrapper(Q(embedding__isnull=False), BooleanField()),
            )
            .values_list(*_Scoring._fields)
        )
    }
    policies = policy.policies_for(owner_id, cached=True)
    scored: list[tuple[uuid.UUID, float, dict[str, Any], list[str]]] = []
    for record_id, fused_score in fused.items():
        row = rows.get(record_id)
        if row is None:
            continue
        parts = dict(components.get(record_id, {}))
        why: list[str] = []
        relevance = min(fused_score / best, 1.0)
        if "vector" in parts:
            why.append(
                f"close in meaning to the question (cosine {parts['vector']:.2f}, "
                f"rank {int(parts['vector_rank'])})"
            )
        if "text" in parts:
            why.append(f"shares words with the question (rank {int(parts['text_rank'])})")
        importance = 0.9 + 0.2 * row.importance
        half_life = policies[policy.scope_of(agent_id=row.agent_id, session_id=row.session_id)]
        if row.layer == Layer.PINNED:
            recency = 1.0
        else:
            # From when it was said: counting accesses too would let whatever a search
            # returned once outrank the rest from then on.
            age = (now - row.occurred_at).total_seconds() / 86400
            recency = _recency(age, half_life.half_life_days)
        time_factor = 1.0
        if windows:
            said = [w for w in windows if (w.start or w.end) and _said_in(row, w)]
            held = [w for w in windows if (w.start or w.end) and _touches(row, w)]
            if said:
                why.append(f"from the period asked about: {_window_text(said[0])}")
                recency = 1.0
            elif held:
                why.append(f"held during the period asked about: {_window_text(held[0])}")
                recency = 1.0
                time_factor = HELD_IN_PERIOD
            elif any(w.start or w.end for w in windows):
                time_factor = OUTSIDE_PERIOD
                asked = ", ".join(_window_text(w) for w in windows)
                why.append(f"outside the period asked about ({asked})")
        validity = 1.0
        if row.layer == Layer.SEMANTIC:
            since = (row.valid_from or row.occurred_at).date().isoformat()
            if row.valid_to is not None and row.valid_to <= now:
                if not windows:
                    validity = NO_LONGER_TRUE
                why.append(f"a fact that held from {since} until {row.valid_to.date().isoformat()}")
            else:
                why.append(f"a fact, true since {since}")
            if row.provenance_count:
                why.append(f"from {row.provenance_count} turn(s)")
        elif row.layer == Layer.WORKING:
            where = f" in session '{row.session_id}'" if row.session_id else ""
            why.append(f"said by {row.speaker or 'someone'}{where} on {row.occurred_at.date()}")
        elif row.layer == Layer.EPISODIC:
            why.append("a summary of earlier turns")
        graph = graph_info.get(record_id)
        if graph is not None and graph.link > 0:
            why.append(f"linked through {', '.join(graph.via[:3]) or 'the graph'}")
        if q.as_of is not None:
            why.append(f"believed on {q.as_of.isoformat()}")
        score = relevance * recency * importance * time_factor * validity
        parts.update(
            relevance=round(relevance, 6),
            recency=round(recency, 6),
            importance=round(importance, 6),
            time=round(time_factor, 6),
            validity=round(validity, 6),
        )
        scored.append((record_id, round(score, 6), parts, why))
    scored.sort(key=lambda item: (-item[1], str(item[0])))
    scored = scored[: q.k]
    whole = {
        row.id: row
        for row in MemoryRecord.objects.filter(id__in=[item[0] for item in scored])
        .select_related("access")
        .defer("search", "embedding")
    }
    hits = [
        MemoryHit(
            record=record_dto(whole[record_id], embedded=rows[record_id].has_embedding),
            score=score,
            scores=parts,
            why=tuple(why),
        )
        for record_id, score, parts, why in scored
        if record_id in whole
    ]
    if hits and q.as_of is None:
        _accessed([hit.record.id for hit in hits])
    return MemorySearchResult(
        hits=tuple(hits),
        mode=q.mode,
        query=q.query,
        time_windows=tuple(windows),
        reference_time=now,
    )
