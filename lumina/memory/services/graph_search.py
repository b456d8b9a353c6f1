"""Graph-expanded search: the entity graph pulls in records that hybrid search ranks low.

A multi-hop question ("where did Ana's sister move after the wedding?") has evidence in
several sessions, and only some of it shares words or meaning with the question. Search
in ``graph`` mode runs hybrid search first; this module then

1. takes the entities of the top hits (``SEEDS``) and those the question names, weighted
   by how rare they are in the owner's memory (an entity in most records, such as the
   speakers of a two-person chat, links nothing);
2. adds their neighbours through typed relations ("family", "lives_in" …) at half weight;
3. collects the other records that mention any of them, within the same eligible set the
   search used (owner, scope, filters, ``as_of``), with a link score per record;
4. ranks the linked records by link strength and closeness to the question, and fuses
   that ranking with the hybrid one by reciprocal rank fusion: linked evidence climbs,
   everything else keeps the order hybrid search gave it.

Each result says which entities linked it and from which hits. Plain hybrid search never
calls this module: all graph work is here.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import uuid
from collections import defaultdict
from collections.abc import Sequence

from django.db import connection
from django.db.models import QuerySet, Value

from lumina.memory.models.records import Layer, MemoryRecord
from lumina.memory.models.topics import Entity, EntityMention, Relation
from lumina.memory.services.entity_extraction import extract, normalize

__all__ = ["GraphRanked", "graph_search"]

SEEDS = 5
NEIGHBOUR_WEIGHT = 0.5
QUERY_ENTITY_WEIGHT = 1.5
# An entity named by more than this share of the owner's records links nothing.
MAX_ENTITY_SHARE = 0.3
MIN_ENTITY_CAP = 3
MAX_LINKED = 200
# Turns on each side of a hit in its session, and how much being next to one counts
# (times the strongest entity's weight, halved per step away).
NEIGHBOURS = 2
NEIGHBOUR_LINK = 0.5
RRF_K = 60
GRAPH_WEIGHT = 2.0
MIN_CLOSENESS = 0.05
# Relations that say something about how two entities are connected; co-mention is
# already the mention walk itself.
CO_MENTION = ("mentioned_with", "mentions")


@dataclasses.dataclass(frozen=True)
class GraphRanked:
    record_id: uuid.UUID
    score: float  # fused score, higher first
    hybrid_rank: int | None  # 1-based rank in the hybrid list, None if only the graph found it
    graph_score: float  # the fused score scaled to 0..1 (1 for the best record)
    link: float  # the entity link score (0: not linked)
    via: tuple[str, ...]  # names of the entities that linked it, strongest first
    seeds: tuple[uuid.UUID, ...]  # the hits it was reached from


def _query_entities(owner_id: uuid.UUID, query_text: str) -> dict[uuid.UUID, str]:
    """Entities of the owner the question names (capitalised names and known keys)."""
    keys = {entity.key for entity in extract(query_text).entities}
    words = [normalize(w) for w in query_text.replace("?", " ").split()]
    # Lower-case mentions of known entities ("ana's sister", "pottery class").
    keys.update(w for w in words if len(w) > 2)
    keys.update(f"{a} {b}" for a, b in itertools.pairwise(words))
    if not keys:
        return {}
    return dict(
        Entity.objects.filter(owner_id=owner_id, key__in=list(keys)).values_list("id", "name")
    )


def _similarities(
    record_ids: Sequence[uuid.UUID], query_embedding: Sequence[float] | None
) -> dict[uuid.UUID, float]:
    if not record_ids or query_embedding is None:
        return {}
    vector = "[" + ",".join(repr(float(x)) for x in query_embedding) + "]"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, 1 - (embedding <=> %s::vector) FROM memory_memoryrecord "
            "WHERE id = ANY(%s) AND embedding IS NOT NULL",
            [vector, list(record_ids)],
        )
        return {row[0]: float(row[1]) for row in cursor.fetchall()}


def _neighbours(
    seeds: Sequence[uuid.UUID], eligible: QuerySet[MemoryRecord]
) -> dict[uuid.UUID, float]:
    """The turns just before and after each seed in its session, weighted by the seed's rank
    and halved per step away (one round trip: a UNION of one small query per side)."""
    rows = MemoryRecord.objects.filter(id__in=seeds).exclude(session_id="")
    sides = []
    for seed in rows.values("id", "session_id", "occurred_at"):
        same = eligible.filter(session_id=seed["session_id"], layer=Layer.WORKING).exclude(
            id__in=seeds
        )
        position = seeds.index(seed["id"])
        for before, order in ((True, "-occurred_at"), (False, "occurred_at")):
            moment = {"occurred_at__lt" if before else "occurred_at__gt": seed["occurred_at"]}
            sides.append(
                same.filter(**moment)
                .order_by(order)
                .annotate(seed_position=Value(position), side=Value(int(before)))
                .values_list("id", "seed_position", "side", "occurred_at")[:NEIGHBOURS]
            )
    if not sides:
        return {}
    found: dict[uuid.UUID, float] = {}
    union = sides[0].union(*sides[1:], all=True) if len(sides) > 1 else sides[0]
    rows_by_side = defaultdict(list)
    for record_id, position, before, moment in union:
        rows_by_side[(position, before)].append((moment, record_id))
    for (position, before), items in rows_by_side.items():
        items.sort(reverse=bool(before))
        for distance, (_, record_id) in enumerate(items, start=1):
            strength = 1.0 / (1 + position) / distance
            found[record_id] = max(found.get(record_id, 0.0), strength)
    return found


def graph_search(
    *,
    owner_id: uuid.UUID,
    hybrid: Sequence[uuid.UUID],
    eligible: QuerySet[MemoryRecord],
    query_text: str,
    query_embedding: Sequence[float] | None,
    k: int,
) -> list[GraphRanked]:
    """The hybrid ranking (record ids, best first) expanded and re-ranked through the graph.

    ``eligible`` is the set the search may return (owner, scope, filters and validity
    already applied); nothing outside it is read or returned.
    """
    seeds = list(hybrid[:SEEDS])
    neighbours_of: dict[uuid.UUID, bool] = {}
    hybrid_rank = {record_id: rank for rank, record_id in enumerate(hybrid, start=1)}
    total = max(eligible.count(), 1)
    cap = max(MIN_ENTITY_CAP, int(total * MAX_ENTITY_SHARE))

    # Entity weights: rarity (idf) times how strongly the entity was reached.
    seed_of_entity: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    reach: dict[uuid.UUID, float] = defaultdict(float)
    for entity_id, record_id in EntityMention.objects.filter(record_id__in=seeds).values_list(
        "entity_id", "record_id"
    ):
        seed_of_entity[entity_id].add(record_id)
        strength = 1.0 / (1 + seeds.index(record_id))
        reach[entity_id] = max(reach[entity_id], strength)
    for entity_id in _query_entities(owner_id, query_text):
        reach[entity_id] = max(reach[entity_id], QUERY_ENTITY_WEIGHT)

    # Hubs (the speakers of a chat, an entity in most records) are no way through.
    hubs = set(
        Entity.objects.filter(id__in=list(reach), mention_count__gt=cap).values_list(
            "id", flat=True
        )
    )
    if reach:
        for source, target in (
            Relation.objects.filter(owner_id=owner_id, source_id__in=list(reach))
            .exclude(kind__in=CO_MENTION)
            .values_list("source_id", "target_id")
            .union(
                Relation.objects.filter(owner_id=owner_id, target_id__in=list(reach))
                .exclude(kind__in=CO_MENTION)
                .values_list("target_id", "source_id")
            )
        ):
            if target not in reach and source not in hubs:
                reach[target] = max(reach.get(target, 0.0), reach[source] * NEIGHBOUR_WEIGHT)
                seed_of_entity[target] |= seed_of_entity[source]

    entities = {
        row["id"]: row
        for row in Entity.objects.filter(id__in=list(reach), mention_count__lte=cap).values(
            "id", "name", "mention_count"
        )
    }
    weight = {
        entity_id: reach[entity_id] * math.log((total + 1) / (row["mention_count"] + 1))
        for entity_id, row in entities.items()
    }

    link: dict[uuid.UUID, float] = defaultdict(float)
    via: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    if weight:
        for entity_id, record_id, strength in (
            EntityMention.objects.filter(entity_id__in=list(weight))
            .filter(record_id__in=eligible.values("id"))
            .exclude(record_id__in=seeds)
            .values_list("entity_id", "record_id", "weight")
        ):
            link[record_id] += weight[entity_id] * strength
            via[record_id].append(entity_id)
    # The turns around a hit in its session: an answer often sits right after its question.
    top_weight = max(weight.values(), default=1.0)
    for record_id, strength in _neighbours(seeds, eligible).items():
        link[record_id] += NEIGHBOUR_LINK * top_weight * strength
        neighbours_of[record_id] = True
    linked = sorted(link, key=lambda r: (-link[r], str(r)))[:MAX_LINKED]

    # The graph's own ranking holds only linked records, by how strongly they are linked
    # and how close they are to the question; fused with the hybrid ranking, it lifts
    # linked evidence and leaves the order of everything else as hybrid search had it.
    # The seeds lead it in their hybrid order: what they link to never passes them.
    top_link = max((link[r] for r in linked), default=0.0) or 1.0
    similarity = _similarities(linked, query_embedding)
    graph_score = {}
    for record_id in linked:
        closeness = similarity.get(record_id)
        if closeness is None:  # no embedding yet: the link alone
            closeness = MIN_CLOSENESS
        graph_score[record_id] = max(closeness, MIN_CLOSENESS) * math.sqrt(
            link[record_id] / top_link
        )
    graph_order = [*seeds, *sorted(linked, key=lambda r: (-graph_score[r], str(r)))]
    graph_rank = {record_id: rank for rank, record_id in enumerate(graph_order, start=1)}

    pool = list(dict.fromkeys([*hybrid, *linked]))
    fused = {}
    for record_id in pool:
        score = 0.0
        if record_id in hybrid_rank:
            score += 1.0 / (RRF_K + hybrid_rank[record_id])
        if record_id in graph_rank:
            score += GRAPH_WEIGHT / (RRF_K + graph_rank[record_id])
        fused[record_id] = score
    ordered = sorted(pool, key=lambda r: (-fused[r], str(r)))[:k]
    top_fused = max(fused.values(), default=0.0) or 1.0

    def names(record_id: uuid.UUID) -> tuple[str, ...]:
        found = sorted(via.get(record_id, []), key=lambda e: -weight[e])
        named = tuple(entities[e]["name"] for e in found)
        return (*named, "the turns around a hit") if record_id in neighbours_of else named

    return [
        GraphRanked(
            record_id=record_id,
            score=round(fused[record_id], 6),
            hybrid_rank=hybrid_rank.get(record_id),
            graph_score=round(fused[record_id] / top_fused, 6),
            link=round(link.get(record_id, 0.0), 6),
            via=names(record_id),
            seeds=tuple(
                sorted(
                    {s for e in via.get(record_id, []) for s in seed_of_entity.get(e, ())},
                    key=seeds.index,
                )
            ),
        )
        for record_id in ordered
    ]
