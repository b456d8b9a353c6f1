"""Graph-expanded search: the entity graph adds records that hybrid search ranked low.

A multi-hop question ("where did Ana's sister move after the wedding?") has evidence in
several sessions, and only some of it shares words or meaning with the question. Search
in ``graph`` mode runs hybrid search first; this module then

1. takes the entities of the top hits (``SEEDS``) and those the question names, each
   weighted by how rare it is in the owner's memory (an entity in most records, such as
   the speakers of a two-person chat, links nothing), plus their neighbours through typed
   relations ("family", "lives_in" …) at half weight;
2. finds the records outside the retrieved ``k`` that mention them, within the same
   eligible set the search used (owner, scope, filters, ``as_of``), and the turns next to
   a top hit in its session;
3. gives each a score derived from the hit that reached it: that hit's relevance × the
   edge (noisy-or of the shared entities' weights; ½ per step away in a session) ×
   ``DECAY`` (one hop). A record keeps its own hybrid score when that is higher. How
   close a linked record is to the question does not count against it: the other half
   of a multi-hop answer is, by its nature, the part that does not sound like the question.

The retrieved records keep their scores and order; a linked record can pass only weaker
ones, never the hit that reached it. Search keeps the best ``GRAPH_AFTER`` hybrid hits
in their places (the graph never makes the first hits worse) and caps how many of the
``k`` slots linked records may take (``GRAPH_SLOTS``). Each result says which entities
linked it and from which hits. Plain hybrid search never calls this module: all graph
work is here.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence

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
# What one hop keeps of the relevance of the hit it starts from.
DECAY = 0.5
# The largest share of a search's k hits that records only the graph lifted may take,
# after the best GRAPH_AFTER hybrid hits, which keep their places.
GRAPH_SLOTS = 0.5
GRAPH_AFTER = 5
_QUESTION = None  # the seed standing for the question's own entities
# Relations that say something about how two entities are connected; co-mention is
# already the mention walk itself.
CO_MENTION = ("mentioned_with", "mentions")


@dataclasses.dataclass(frozen=True)
class GraphRanked:
    record_id: uuid.UUID
    score: float  # its relevance: the higher of its hybrid score and graph_score
    hybrid_rank: int | None  # 1-based rank in the hybrid list, None if only the graph found it
    graph_score: float  # seed relevance × edge × DECAY (0: not reached)
    link: float  # the edge from its best seed, 0..1 (0: not linked)
    via: tuple[str, ...]  # names of the entities that linked it, strongest first
    seeds: tuple[uuid.UUID, ...]  # the hits it was reached from
    lifted: bool = False  # its graph score beat its own: the graph put it where it is


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


def _neighbours(
    seeds: Sequence[uuid.UUID], eligible: QuerySet[MemoryRecord]
) -> dict[uuid.UUID, tuple[uuid.UUID, int]]:
    """The turns just before and after each seed in its session: (the best seed next to
    it, steps away). One round trip: a UNION of one small query per side."""
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
    found: dict[uuid.UUID, tuple[uuid.UUID, int]] = {}
    union = sides[0].union(*sides[1:], all=True) if len(sides) > 1 else sides[0]
    rows_by_side = defaultdict(list)
    for record_id, position, before, moment in union:
        rows_by_side[(position, before)].append((moment, record_id))
    for (position, before), items in rows_by_side.items():
        items.sort(reverse=bool(before))
        for distance, (_, record_id) in enumerate(items, start=1):
            best = found.get(record_id)
            if best is None or (position, distance) < (seeds.index(best[0]), best[1]):
                found[record_id] = (seeds[position], distance)
    return found


def graph_search(
    *,
    owner_id: uuid.UUID,
    hybrid: Sequence[uuid.UUID],
    eligible: QuerySet[MemoryRecord],
    query_text: str,
    k: int,
    scores: Mapping[uuid.UUID, float] | None = None,
) -> list[GraphRanked]:
    """The hybrid ranking (record ids, best first; ``scores``: their fused relevance)
    with what the graph adds, best first.

    The first ``k`` hybrid records are what was retrieved: they keep their own scores and
    order. Every other record the top hits (and the question's own entities) reach gets
    ``seed score × edge × DECAY``: its seed's relevance, times how strongly it is linked
    (an entity's rarity, half per relation hop; ½ per step away in a session), times one
    hop's decay, and keeps the higher of that and its own hybrid score. So a linked record
    can pass only the weaker retrieved ones, never the hit that reached it.

    ``eligible`` is the set the search may return (owner, scope, filters and validity
    already applied); nothing outside it is read or returned.
    """
    if scores is None:  # no scores given: the hybrid order alone, evenly spaced
        scores = {r: 1.0 - rank / max(len(hybrid), 1) for rank, r in enumerate(hybrid)}
    seeds = list(hybrid[:SEEDS])
    retrieved = set(hybrid[:k])
    hybrid_rank = {record_id: rank for rank, record_id in enumerate(hybrid, start=1)}
    total = max(eligible.count(), 1)
    cap = max(MIN_ENTITY_CAP, int(total * MAX_ENTITY_SHARE))
    top_score = max((scores.get(s, 0.0) for s in seeds), default=0.0)

    # Which entities each seed reaches, and how strongly (1 for its own mentions, half for
    # an entity one typed relation away). The question's own entities reach from the best
    # hit's score: the question is as good a seed as its best answer.
    reach: dict[uuid.UUID | None, dict[uuid.UUID, float]] = defaultdict(dict)
    for entity_id, record_id, strength in EntityMention.objects.filter(
        record_id__in=seeds
    ).values_list("entity_id", "record_id", "weight"):
        reach[record_id][entity_id] = max(reach[record_id].get(entity_id, 0.0), strength)
    for entity_id in _query_entities(owner_id, query_text):
        reach[_QUESTION][entity_id] = 1.0
    reached = {e for entities in reach.values() for e in entities}
    hubs = set(
        Entity.objects.filter(id__in=list(reached), mention_count__gt=cap).values_list(
            "id", flat=True
        )
    )
    if reached:
        related: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
        for source, target in (
            Relation.objects.filter(owner_id=owner_id, source_id__in=list(reached))
            .exclude(kind__in=CO_MENTION)
            .values_list("source_id", "target_id")
            .union(
                Relation.objects.filter(owner_id=owner_id, target_id__in=list(reached))
                .exclude(kind__in=CO_MENTION)
                .values_list("target_id", "source_id")
            )
        ):
            if source not in hubs:
                related[source].add(target)
        for entities in reach.values():
            for source, strength in list(entities.items()):
                for target in related.get(source, ()):
                    hop = strength * NEIGHBOUR_WEIGHT
                    if hop > entities.get(target, 0.0):
                        entities[target] = hop
    # An entity some other retrieved record already names (not only refers back to by
    # pronoun) has brought its evidence in: only entities that lead outside the
    # retrieved set can add any.
    covered = set(
        EntityMention.objects.filter(
            record_id__in=[r for r in retrieved if r not in seeds], weight__gte=1.0
        )
        .values_list("entity_id", flat=True)
        .distinct()
    )
    for entities_of_seed in reach.values():
        for entity_id in covered & entities_of_seed.keys():
            del entities_of_seed[entity_id]
    reached = {e for entities in reach.values() for e in entities}
    entities = {
        row["id"]: row
        for row in Entity.objects.filter(id__in=list(reached), mention_count__lte=cap).values(
            "id", "name", "mention_count"
        )
    }
    # Rarity on a 0..1 scale: an entity only two records name links them almost surely.
    scale = math.log(total + 1) or 1.0
    rarity = {
        entity_id: max(0.0, math.log((total + 1) / (row["mention_count"] + 1)) / scale)
        for entity_id, row in entities.items()
    }

    # Each linked record: from each seed, the chance that at least one shared entity links
    # them (noisy-or of the edges); its score is the best seed's score times that.
    derived: dict[uuid.UUID, float] = {}
    edge_of: dict[uuid.UUID, float] = {}
    via: dict[uuid.UUID, dict[uuid.UUID, float]] = defaultdict(dict)
    seeds_of: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    if rarity:
        mentions: dict[uuid.UUID, list[tuple[uuid.UUID, float]]] = defaultdict(list)
        for entity_id, record_id, strength in (
            EntityMention.objects.filter(entity_id__in=list(rarity))
            .filter(record_id__in=eligible.values("id"))
            .exclude(record_id__in=seeds)
            .values_list("entity_id", "record_id", "weight")
        ):
            mentions[record_id].append((entity_id, min(strength, 1.0)))
        for record_id, found in mentions.items():
            if record_id in retrieved:
                continue
            for seed, entities_of_seed in reach.items():
                missing = 1.0
                for entity_id, strength in found:
                    edge = entities_of_seed.get(entity_id, 0.0) * rarity[entity_id] * strength
                    if edge > 0:
                        missing *= 1.0 - min(edge, 1.0)
                        via[record_id][entity_id] = max(via[record_id].get(entity_id, 0), edge)
                if missing < 1.0:
                    base = top_score if seed is _QUESTION else scores.get(seed, 0.0)
                    value = base * (1.0 - missing) * DECAY
                    if seed is not _QUESTION:
                        seeds_of[record_id].add(seed)
                    if value > derived.get(record_id, 0.0):
                        derived[record_id], edge_of[record_id] = value, 1.0 - missing
    # The turns around a hit in its session: an answer often sits right after its question.
    beside: set[uuid.UUID] = set()
    for record_id, (seed, distance) in _neighbours(seeds, eligible).items():
        if record_id in retrieved:
            continue
        edge = NEIGHBOUR_LINK / distance
        value = scores.get(seed, 0.0) * edge * DECAY
        if value > derived.get(record_id, 0.0):
            derived[record_id], edge_of[record_id] = value, edge
        seeds_of[record_id].add(seed)
        beside.add(record_id)
    linked = sorted(derived, key=lambda r: (-derived[r], str(r)))[:MAX_LINKED]

    merged = {record_id: scores.get(record_id, 0.0) for record_id in hybrid}
    lifted = set()
    for record_id in linked:
        if derived[record_id] > merged.get(record_id, 0.0):
            merged[record_id] = derived[record_id]
            lifted.add(record_id)
    ordered = sorted(merged, key=lambda r: (-merged[r], hybrid_rank.get(r, 10**9), str(r)))
    ordered = ordered[: max(k, len(hybrid))]

    def names(record_id: uuid.UUID) -> tuple[str, ...]:
        found = sorted(via.get(record_id, {}).items(), key=lambda item: -item[1])
        named = tuple(entities[e]["name"] for e, _ in found if e in entities)
        return (*named, "the turns around a hit") if record_id in beside else named

    return [
        GraphRanked(
            record_id=record_id,
            score=round(merged[record_id], 6),
            hybrid_rank=hybrid_rank.get(record_id),
            graph_score=round(derived.get(record_id, 0.0), 6),
            link=round(edge_of.get(record_id, 0.0), 6),
            via=names(record_id) if record_id in derived else (),
            seeds=tuple(sorted(seeds_of.get(record_id, ()), key=seeds.index)),
            lifted=record_id in lifted,
        )
        for record_id in ordered
    ]
