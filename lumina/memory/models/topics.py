"""Topics and the entity graph of an owner's memories.

A ``Topic`` is a cluster of records of one scope (a session, an agent, all of a user's
memories, or a vector collection), with c-TF-IDF keywords and a parent in a two-level
hierarchy; ``TopicMembership`` says which records it holds. ``Entity`` and ``Relation``
form the graph: an entity is a normalised name per owner, a relation a typed, weighted
edge whose provenance is the records it was read from (``RelationEvidence``), and
``EntityMention`` says which records name an entity, which is what graph-expanded
search walks. Rows hang on their records with cascading keys, so purging a record takes
its mentions and evidence with it.
"""

from __future__ import annotations

import uuid

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils import timezone
from pgvector.django import VectorField

from lumina.memory.models.records import EMBEDDING_DIMENSIONS

__all__ = [
    "Entity",
    "EntityMention",
    "Relation",
    "RelationEvidence",
    "Topic",
    "TopicMembership",
    "TopicScope",
]


class TopicScope(models.TextChoices):
    USER = "user", "All of a user's memories"
    AGENT = "agent", "An agent's memories"
    SESSION = "session", "One session"
    COLLECTION = "collection", "A vector collection"


class Topic(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner_id = models.UUIDField()
    scope = models.CharField(max_length=16, choices=TopicScope.choices)
    # The scope's key: the agent id, the session id or the collection's id ("" for a user).
    scope_key = models.CharField(max_length=200, blank=True, default="")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    level = models.PositiveSmallIntegerField(default=0)  # 0 leaf, 1 parent
    label = models.CharField(max_length=200)
    keywords = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    keyword_weights = ArrayField(models.FloatField(), default=list, blank=True)
    size = models.PositiveIntegerField(default=0)
    # How many records the scope held when these topics were extracted: the handler
    # extracts again once the scope has grown by a share of it.
    extracted_from = models.PositiveIntegerField(default=0)
    # Mean of the members' normalised embeddings: new records join the nearest leaf.
    centroid = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["owner_id", "scope", "scope_key", "level"], name="memtopic_scope")
        ]
        constraints = [
            models.CheckConstraint(condition=Q(level__in=[0, 1]), name="memtopic_level"),
        ]

    def __str__(self) -> str:
        return self.label


class TopicMembership(models.Model):
    """A record (a memory or a collection's vector) in a leaf topic."""

    id = models.BigAutoField(primary_key=True)
    topic = models.ForeignKey(Topic, on_delete=models.CASCADE, related_name="memberships")
    record = models.ForeignKey(
        "memory.MemoryRecord", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    vector = models.ForeignKey(
        "memory.VectorRecord", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    # Cosine similarity to the topic's centroid when the record joined.
    similarity = models.FloatField(default=0.0)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(record__isnull=False, vector__isnull=True)
                | Q(record__isnull=True, vector__isnull=False),
                name="memtopicm_one_member",
            ),
            models.UniqueConstraint(
                fields=["topic", "record"],
                name="memtopicm_record_once",
                condition=Q(record__isnull=False),
            ),
            models.UniqueConstraint(
                fields=["topic", "vector"],
                name="memtopicm_vector_once",
                condition=Q(vector__isnull=False),
            ),
        ]
        indexes = [models.Index(fields=["record"], name="memtopicm_record")]

    def __str__(self) -> str:
        return f"{self.topic_id}: {self.record_id or self.vector_id}"


class Entity(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner_id = models.UUIDField()
    key = models.CharField(max_length=100)  # entity_extraction.normalize(name)
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, default="other")
    mention_count = models.PositiveIntegerField(default=0)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "entities"
        constraints = [
            models.UniqueConstraint(fields=["owner_id", "key"], name="mementity_key_once")
        ]

    def __str__(self) -> str:
        return self.name


class EntityMention(models.Model):
    """A record that names an entity, or (``weight`` < 1) refers to it by a pronoun right
    after a turn of its session that named it."""

    id = models.BigAutoField(primary_key=True)
    entity = models.ForeignKey(Entity, on_delete=models.CASCADE, related_name="mentions")
    record = models.ForeignKey(
        "memory.MemoryRecord", on_delete=models.CASCADE, related_name="entity_mentions"
    )
    weight = models.FloatField(default=1.0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["entity", "record"], name="memmention_once")]
        indexes = [models.Index(fields=["record"], name="memmention_record")]

    def __str__(self) -> str:
        return f"{self.entity_id} in {self.record_id}"


class Relation(models.Model):
    """A typed, weighted edge; ``weight`` is the number of records that support it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner_id = models.UUIDField()
    source = models.ForeignKey(Entity, on_delete=models.CASCADE, related_name="outgoing")
    target = models.ForeignKey(Entity, on_delete=models.CASCADE, related_name="incoming")
    kind = models.CharField(max_length=32)
    weight = models.FloatField(default=0.0)
    # How the edge was read: "rules" or "llm" (the latest that supported it).
    extracted_by = models.CharField(max_length=16, default="rules")
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["owner_id", "source", "target", "kind"], name="memrelation_once"
            ),
            models.CheckConstraint(
                condition=~Q(source=models.F("target")), name="memrelation_no_loop"
            ),
        ]
        indexes = [
            models.Index(fields=["owner_id", "-weight"], name="memrelation_owner_weight"),
            models.Index(fields=["target"], name="memrelation_target"),
        ]

    def __str__(self) -> str:
        return f"{self.source_id} -{self.kind}-> {self.target_id}"


class RelationEvidence(models.Model):
    """A record a relation was read from: the relation's provenance."""

    id = models.BigAutoField(primary_key=True)
    relation = models.ForeignKey(Relation, on_delete=models.CASCADE, related_name="evidence")
    record = models.ForeignKey("memory.MemoryRecord", on_delete=models.CASCADE, related_name="+")
    # The words the relation was read from ("my sister Ana"), when a pattern found it.
    quote = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["relation", "record"], name="memevidence_once")
        ]
        indexes = [models.Index(fields=["record"], name="memevidence_record")]

    def __str__(self) -> str:
        return f"{self.relation_id} from {self.record_id}"
