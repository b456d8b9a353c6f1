"""Memory search: hybrid (default), vector, text or graph, time-aware, every hit explained.

Retrievers, one SQL statement each over the same eligible set (owner, scope, layers,
filters, and what was believed: now, or ``as_of``):

- ``vector``: cosine similarity to the question's embedding through the HNSW index, with
  pgvector's iterative scan so filters still leave enough candidates;
- ``text``: PostgreSQL full text (GIN), any of the question's words, ranked by cover
  density;
- ``time``: when the question names a period ("last spring", "in 2023", "before the
  move"), the vector ranking again, restricted to what was said (or held true) then.

They are fused into a relevance in [0, 1]: a weighted mean of each retriever's score, a
similarity as it is (cosine has a fixed scale), a text score over the best text score;
each retriever's weight scaled by how sharply it separates its candidates (``_fuse``).
Each hit still reports its rank in every retriever. The score is relevance × recency ×
importance × time: recency halves with the scope's half-life down to a floor (an old
memory still answers a question about it), a period in the question replaces recency by
whether the record falls in that period, and a fact that no longer holds counts less
unless the question is about its time. ``graph``
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
import statistics
import uuid
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from django.core.exceptions import EmptyResultSet, FullResultSet
from django.db import connection, transaction
from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from lumina.memory.errors import InvalidInputError
from lumina.memory.models.records import TEXT_SEARCH_CONFIG, Layer, MemoryAccess, MemoryRecord
from lumina.memory.records_types import (
    MemoryHit,
    MemoryRecordDTO,
    MemorySearchResult,
    TimeWindow,
)
from lumina.memory.selectors.record_access import READ, owner_resolve
from lumina.memory.selectors.records import record_dto_of
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
# Text matches of a period's anchor ("before the move") read to find the first said.
ANCHOR_TIES = 20
# Embeds questions while the text retrievers run (the embedder holds no database handle).
_embedder = ThreadPoolExecutor(max_workers=2, thread_name_prefix="memory-search-embed")
_TSQUERY = f"replace(plainto_tsquery('{TEXT_SEARCH_CONFIG}', %s)::text, ' & ', ' | ')::tsquery"
# Any of the question's words in what was said (the text's lexemes weigh C, the
# speaker's D): the speaker adds to a match but never makes one.
_TSQUERY_SAID = (
    "(SELECT string_agg(quote_literal(lexeme) || ':C', ' | ') "  # noqa: S608 (constants)
    f"FROM unnest(tsvector_to_array(to_tsvector('{TEXT_SEARCH_CONFIG}', %s))) AS lexeme)"
    "::tsquery"
)
# ts_rank_cd's weights for D, C, B, A: the text's words as before (0.1), a speaker half.
_RANK_WEIGHTS = "'{0.05, 0.1, 0.4, 1.0}'"


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


class _Candidate(NamedTuple):
    """What scoring reads of a candidate; only the k hits are then read whole."""

    id: uuid.UUID
    layer: str
    agent_id: str
    session_id: str
    occurred_at: dt.datetime
    importance: float
    valid_from: dt.datetime | None
    valid_to: dt.datetime | None


class _Record(NamedTuple):
    """A hit's whole record (all but its embedding and search vector), as explaining and
    the answer read it."""

    id: uuid.UUID
    owner_id: uuid.UUID
    agent_id: str
    session_id: str
    layer: str
    speaker: str
    label: str
    text: str
    external_id: str
    fact_key: str
    metadata: Any
    occurred_at: dt.datetime
    importance: float
    valid_from: dt.datetime | None
    valid_to: dt.datetime | None
    recorded_at: dt.datetime
    superseded_at: dt.datetime | None
    superseded_by_id: uuid.UUID | None
    provenance: list[uuid.UUID] | None
    extracted_by: str
    expires_at: dt.datetime | None
    expired_at: dt.datetime | None
    has_embedding: bool
    access_count: int | None
    last_accessed_at: dt.datetime | None


_TABLE = MemoryRecord._meta.db_table
_CANDIDATE_SELECT = ", ".join(f"r.{name}" for name in _Candidate._fields)
_RECORD_SELECT = (
    ", ".join(f"r.{name}" for name in _Record._fields[:-3])
    + ", r.embedding IS NOT NULL, a.count, a.last_accessed_at"
)
_RECORD_JOIN = f"{_TABLE} r LEFT JOIN {MemoryAccess._meta.db_table} a ON a.record_id = r.id"

Ranking = list[tuple[uuid.UUID, float]]
Candidates = dict[uuid.UUID, _Candidate]


def _ranked_candidates(sql: str, params: Sequence[Any], candidates: Candidates) -> Ranking:
    """The (id, score) rows of ``sql``, each with what scoring reads of it (into
    ``candidates``) in the same statement. A candidate's text, metadata and the rest are
    read only if it becomes one of the k hits: most of the candidates never do."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT ranked.score, {_CANDIDATE_SELECT} FROM ({sql}) AS ranked(id, score) "  # noqa: S608
            f"JOIN {_TABLE} r ON r.id = ranked.id",
            params,
        )
        found = []
        for score, *columns in cursor.fetchall():
            candidate = _Candidate._make(columns)
            candidates[candidate.id] = candidate
            found.append((candidate.id, float(score)))
    return found


def _candidates_read(record_ids: Iterable[uuid.UUID], candidates: Candidates) -> None:
    """Read the candidates not read yet (graph search's finds)."""
    missing = [record_id for record_id in record_ids if record_id not in candidates]
    if missing:
        _ranked_candidates(
            f"SELECT id, 0 FROM {_TABLE} WHERE id = ANY(%s)",  # noqa: S608
            [missing],
            candidates,
        )


def _hits_read(record_ids: list[uuid.UUID], *, count_access: bool) -> dict[uuid.UUID, _Record]:
    """The hits read whole and, with ``count_access``, one more access of each counted in
    the same statement (its read sees the counts from before, as one statement sees
    one snapshot).

    On its own (no caller's transaction) the count commits without waiting for the WAL
    flush: a crash may lose the last counts of a fraction of a second, never consistency,
    and the search does not wait for the disk."""
    sql = f"SELECT {_RECORD_SELECT} FROM {_RECORD_JOIN} WHERE r.id = ANY(%s)"  # noqa: S608
    params: list[Any] = [record_ids]
    if count_access:
        relaxed = "" if connection.in_atomic_block else "SET LOCAL synchronous_commit = off; "
        sql = (
            f"{relaxed}WITH counted AS ("
            "INSERT INTO memory_memoryaccess (record_id, count, last_accessed_at) "
            "SELECT unnest(%s::uuid[]), 1, %s "
            "ON CONFLICT (record_id) DO UPDATE SET count = memory_memoryaccess.count + 1, "
            f"last_accessed_at = EXCLUDED.last_accessed_at) {sql}"
        )
        params = [record_ids, timezone.now(), record_ids]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if count_access and cursor.description is None:
            cursor.nextset()  # past the SET
        return {row[0]: _Record._make(row) for row in cursor.fetchall()}


def _where(rows: QuerySet[MemoryRecord]) -> tuple[str, list[Any]]:
    """The WHERE clause of ``rows``, compiled once for the statements of a search."""
    query = rows.query
    try:
        sql, params = query.get_compiler(using=rows.db).compile(query.where)
    except FullResultSet:
        return "TRUE", []
    except EmptyResultSet:
        return "FALSE", []
    return sql, list(params)


def _vector_literal(embedding: Sequence[float]) -> str:
    # float32 values: nine significant digits hold each exactly, in half the text of repr().
    return "[" + ",".join([f"{value:.9g}" for value in embedding]) + "]"


def _vector_ranking(
    where: tuple[str, list[Any]],
    embedding: Sequence[float],
    limit: int,
    candidates: Candidates,
) -> Ranking:
    sql = (
        f"SELECT id, embedding <=> %s::vector FROM {_TABLE} "  # noqa: S608 (constants, compiled filter)
        f"WHERE ({where[0]}) AND embedding IS NOT NULL ORDER BY 2 LIMIT %s"
    )
    found = _ranked_candidates(sql, [_vector_literal(embedding), *where[1], limit], candidates)
    # Iterative scans return rows in relaxed order (and the join any order): sort exactly.
    return sorted(((rid, 1.0 - d) for rid, d in found), key=lambda x: (-x[1], x[0]))


def _text_ranking(
    where: tuple[str, list[Any]], text: str, limit: int, candidates: Candidates
) -> Ranking:
    """Records sharing any of the question's words, rarer words weighing more.

    PostgreSQL's ranking has no document frequency, so "Sam" (in every other turn) would
    count as much as "hiking"; each word here weighs ln(1 + matches / matches of it),
    counted among the records that match any word, times the cover density rank."""
    eligible_sql = f"SELECT id, search, occurred_at FROM {_TABLE} WHERE {where[0]}"  # noqa: S608
    sql = f"""
        WITH words AS (
            SELECT DISTINCT quote_literal(lexeme)::tsquery AS word
            FROM unnest(tsvector_to_array(to_tsvector('{TEXT_SEARCH_CONFIG}', %s))) AS lexeme
        ),
        matches AS (
            SELECT e.id, e.search, e.occurred_at FROM ({eligible_sql}) AS e
            WHERE e.search @@ {_TSQUERY_SAID}
        ),
        weights AS (
            SELECT words.word, ln(1 + (SELECT count(*) FROM matches)::float / count(*)) AS idf
            FROM matches JOIN words ON matches.search @@ words.word
            GROUP BY words.word
        )
        SELECT matches.id,
               sum(weights.idf) * (1 + ts_rank_cd({_RANK_WEIGHTS}, matches.search, {_TSQUERY}, 32))
                   AS score
        FROM matches JOIN weights ON matches.search @@ weights.word
        GROUP BY matches.id, matches.search, matches.occurred_at
        ORDER BY score DESC, matches.occurred_at DESC, matches.id
        LIMIT %s
    """  # noqa: S608 (constants and the ORM's parameterised SQL)
    found = _ranked_candidates(sql, [text, *where[1], text, text, limit], candidates)
    return sorted(found, key=lambda x: (-x[1], _newest_first(candidates[x[0]]), x[0]))


def _newest_first(row: _Candidate) -> float:
    """Equal scores (old records share the recency floor): the newer first, not whichever
    random id sorts first."""
    return -row.occurred_at.timestamp()


def _resolve_anchors(windows: list[TimeWindow], where: tuple[str, list[Any]]) -> list[TimeWindow]:
    """ "before the move": when the best text match of "move" was said; of several equally
    good, the first said (where the thing came up)."""
    resolved = []
    for window in windows:
        if not window.anchor:
            resolved.append(window)
            continue
        found: Candidates = {}
        best = _text_ranking(where, window.anchor, ANCHOR_TIES, found)
        if not best:
            continue
        said = min(found[r].occurred_at for r, score in best if score >= best[0][1] - 1e-9)
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


def _fuse(
    rankings: Mapping[str, Ranking],
    weights: Mapping[str, float],
    calibrated: Iterable[str] = (),
) -> tuple[dict[uuid.UUID, float], dict[uuid.UUID, dict[str, float]]]:
    """Each candidate's relevance in [0, 1]: a weighted mean of its retrievers' scores
    (0 from a retriever that did not find it), and its score and rank in each retriever
    (ties share a rank).

    Scores on a fixed scale (``calibrated``: cosine similarity) are taken as they are; the
    others (text ranks) over the retriever's best, which keeps how far ahead the best is.
    Dividing a similarity by the best would stretch a weak best match to 1 and let
    whatever sits near it outweigh a strong text match.

    Each retriever's weight is scaled by how sharply it separates its candidates: the
    standard deviation of its scores as used (a post-retrieval predictor of how well a
    query went, as NQC, Shtok et al. 2012). A question whose words pick out a few records
    leans on the text ranking; one answered in other words, on meaning."""
    calibrated = set(calibrated)
    shares: dict[str, list[float]] = {}
    confidence: dict[str, float] = {}
    for name, ranking in rankings.items():
        top = max((score for _, score in ranking), default=0.0)
        if name in calibrated:
            used = [max(score, 0.0) for _, score in ranking]
        else:
            used = [max(score, 0.0) / top if top > 0 else 0.0 for _, score in ranking]
        shares[name] = used
        if len(used) > 1:
            confidence[name] = statistics.pstdev(used)
    # One candidate shows no spread either way: that ranking keeps its weight. Candidates
    # all alike (say, a name every match shares and nothing else) order nothing: none.
    mean_confidence = statistics.fmean(confidence.values()) if confidence else 0.0
    effective = {
        name: weights[name]
        * (confidence.get(name, mean_confidence) / mean_confidence if mean_confidence else 1.0)
        for name in rankings
    }
    total = sum(effective.values())
    fused: dict[uuid.UUID, float] = {}
    components: dict[uuid.UUID, dict[str, float]] = {}
    for name, ranking in rankings.items():
        weight = effective[name] / total if total > 0 else 0.0
        previous, rank = None, 0
        for position, ((record_id, score), share) in enumerate(
            zip(ranking, shares[name], strict=True), start=1
        ):
            if score != previous:
                previous, rank = score, position
            fused[record_id] = fused.get(record_id, 0.0) + weight * share
            parts = components.setdefault(record_id, {})
            parts[name] = round(score, 6)
            parts[f"{name}_rank"] = rank
    return fused, components


def _record_dto(row: _Record) -> MemoryRecordDTO:
    return record_dto_of(
        row,
        metadata=json.loads(row.metadata) if isinstance(row.metadata, str) else row.metadata,
        access_count=row.access_count or 0,
        last_accessed_at=row.last_accessed_at,
        embedded=row.has_embedding,
    )


def _graph_slots(
    scored: list[tuple[uuid.UUID, float, dict[str, float]]],
    graph_info: Mapping[uuid.UUID, Any],
    k: int,
) -> list[tuple[uuid.UUID, float, dict[str, float]]]:
    """At most ``GRAPH_SLOTS`` of the k hits may be records the graph lifted, and never
    one of the first ``GRAPH_AFTER`` (fewer if k leaves no room): the best hybrid hits
    keep their places. The others it lifted wait after the k, in order."""
    from lumina.memory.services.graph_search import GRAPH_AFTER, GRAPH_SLOTS

    def lifted(item: tuple[uuid.UUID, float, dict[str, float]]) -> bool:
        info = graph_info.get(item[0])
        return info is not None and info.lifted

    slots = max(1, math.ceil(k * GRAPH_SLOTS))
    first = [item for item in scored if not lifted(item)][: min(GRAPH_AFTER, k - slots)]
    kept = {item[0] for item in first}
    head, held = list(first), []
    for item in scored:
        if item[0] in kept:
            continue
        if lifted(item) and len(head) < k:
            if slots == 0:
                held.append(item)
                continue
            slots -= 1
        head.append(item)
    return head[:k] + held + head[k:]


def _why(
    row: _Record,
    parts: Mapping[str, float],
    q: SearchQuery,
    windows: list[TimeWindow],
    graph: Any,
    now: dt.datetime,
) -> tuple[str, ...]:
    """Why a hit is there, in words: each retriever that found it, the period, the layer."""
    why: list[str] = []
    bounded = [w for w in windows if w.start or w.end]
    if "vector" in parts:
        why.append(
            f"close in meaning to the question (cosine {parts['vector']:.2f}, "
            f"rank {int(parts['vector_rank'])})"
        )
    if "text" in parts:
        why.append(f"shares words with the question (rank {int(parts['text_rank'])})")
    if bounded:
        said = [w for w in bounded if _said_in(row, w)]
        held = [w for w in bounded if _touches(row, w)]
        if said:
            why.append(f"from the period asked about: {_window_text(said[0])}")
        elif held:
            why.append(f"held during the period asked about: {_window_text(held[0])}")
        else:
            asked = ", ".join(_window_text(w) for w in windows)
            why.append(f"outside the period asked about ({asked})")
    if row.layer == Layer.SEMANTIC:
        since = (row.valid_from or row.occurred_at).date().isoformat()
        if row.valid_to is not None and row.valid_to <= now:
            why.append(f"a fact that held from {since} until {row.valid_to.date().isoformat()}")
        else:
            why.append(f"a fact, true since {since}")
        if row.provenance:
            why.append(f"from {len(row.provenance)} turn(s)")
    elif row.layer == Layer.WORKING:
        where = f" in session '{row.session_id}'" if row.session_id else ""
        why.append(f"said by {row.speaker or 'someone'}{where} on {row.occurred_at.date()}")
    elif row.layer == Layer.EPISODIC:
        why.append("a summary of earlier turns")
    if graph is not None and graph.link > 0:
        why.append(f"linked through {', '.join(graph.via[:3]) or 'the graph'}")
    if q.as_of is not None:
        why.append(f"believed on {q.as_of.isoformat()}")
    return tuple(why)


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
    where = _where(base)
    if windows:
        windows = _resolve_anchors(windows, where)
    depth = max(q.k * 4, 40)

    # The retrievers read what scoring needs of their candidates in the same statements.
    candidates: Candidates = {}
    text_ranking = None
    if q.mode in (HYBRID, TEXT, GRAPH) and weights["text"] > 0:
        text_ranking = _text_ranking(where, text, depth, candidates)
    embedding = pending.result()[0] if pending is not None else None
    rankings: dict[str, Ranking] = {}
    with _hnsw_scan(int(max(q.ef_search, depth)), needed=embedding is not None):
        if embedding is not None and weights["vector"] > 0:
            rankings["vector"] = _vector_ranking(where, embedding, depth, candidates)
        if text_ranking is not None:
            rankings["text"] = text_ranking
        bounded = [w for w in windows if w.start is not None or w.end is not None]
        if bounded and weights["time"] > 0 and q.mode != TEXT:
            period = Q()
            for window in bounded:
                period |= _in_window(window)
            in_period = base.filter(period)
            if embedding is not None:
                rankings["time"] = _vector_ranking(_where(in_period), embedding, depth, candidates)
            else:
                rankings["time"] = _text_ranking(_where(in_period), text, depth, candidates)

    # Similarities are on a fixed scale (the time retriever ranks by meaning too, unless
    # the question could not be embedded).
    calibrated = {"vector", "time"} if embedding is not None else set()
    fused, components = _fuse(rankings, weights, calibrated)
    best = 1.0  # relevance is already in [0, 1]

    graph_info: dict[uuid.UUID, Any] = {}
    if q.mode == GRAPH and fused:
        from lumina.memory.services.graph_search import graph_search

        expanded = graph_search(
            owner_id=owner_id,
            hybrid=sorted(fused, key=lambda r: (-fused[r], str(r))),
            scores=fused,
            eligible=base,
            query_text=q.query,
            k=q.k,
        )
        graph_fused = {}
        for g in expanded:
            graph_info[g.record_id] = g
            # Its own relevance, or (if higher) the one it inherits from the hit that
            # reached it: the graph adds evidence and displaces only weaker hits.
            graph_fused[g.record_id] = g.score
            if g.graph_score > 0:
                parts = components.setdefault(g.record_id, {})
                parts["graph"] = round(g.graph_score, 6)
                parts["graph_link"] = round(g.link, 6)
        fused = graph_fused
        _candidates_read(fused, candidates)

    # Every candidate is scored; only the k best are explained.
    policies = policy.policies_for(owner_id, cached=True)
    bounded = [w for w in windows if w.start or w.end]
    scored: list[tuple[uuid.UUID, float, dict[str, float]]] = []
    for record_id, fused_score in fused.items():
        row = candidates.get(record_id)
        if row is None:
            continue
        relevance = min(fused_score / best, 1.0)
        importance = 0.9 + 0.2 * row.importance
        if row.layer == Layer.PINNED:
            recency = 1.0
        else:
            # From when it was said: counting accesses too would let whatever a search
            # returned once outrank the rest from then on.
            half_life = policies[policy.scope_of(agent_id=row.agent_id, session_id=row.session_id)]
            age = (now - row.occurred_at).total_seconds() / 86400
            recency = _recency(age, half_life.half_life_days)
        time_factor = 1.0
        if bounded:
            if any(_said_in(row, w) for w in bounded):
                recency = 1.0
            elif any(_touches(row, w) for w in bounded):
                recency, time_factor = 1.0, HELD_IN_PERIOD
            else:
                time_factor = OUTSIDE_PERIOD
        validity = 1.0
        if (
            row.layer == Layer.SEMANTIC
            and not windows
            and row.valid_to is not None
            and row.valid_to <= now
        ):
            validity = NO_LONGER_TRUE
        score = relevance * recency * importance * time_factor * validity
        parts = dict(components.get(record_id, {}))
        parts.update(
            relevance=round(relevance, 6),
            recency=round(recency, 6),
            importance=round(importance, 6),
            time=round(time_factor, 6),
            validity=round(validity, 6),
        )
        scored.append((record_id, round(score, 6), parts))
    scored.sort(key=lambda item: (-item[1], _newest_first(candidates[item[0]]), item[0]))
    if graph_info:
        scored = _graph_slots(scored, graph_info, q.k)
    scored = scored[: q.k]
    records = (
        _hits_read([record_id for record_id, _, _ in scored], count_access=q.as_of is None)
        if scored
        else {}
    )
    hits = [
        MemoryHit(
            record=_record_dto(records[record_id]),
            score=score,
            scores=parts,
            why=_why(records[record_id], parts, q, windows, graph_info.get(record_id), now),
        )
        for record_id, score, parts in scored
        if record_id in records  # deleted since it was ranked
    ]
    return MemorySearchResult(
        hits=tuple(hits),
        mode=q.mode,
        query=q.query,
        time_windows=tuple(windows),
        reference_time=now,
    )
