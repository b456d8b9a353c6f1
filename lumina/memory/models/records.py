"""Memory records: turns said, facts distilled from them, summaries and pinned blocks.

One table for every layer, so one search ranks turns and facts together. Facts are
bi-temporal (Graphiti's model): ``valid_from``/``valid_to`` say when a fact was true,
``recorded_at``/``superseded_at`` when we believed it. A contradicted or refined fact is
closed, never deleted, and ``superseded_by`` points at what replaced it. Expired records
leave the search indexes (partial indexes on ``expired_at IS NULL``) but stay until
``memory purge``.
"""

from __future__ import annotations

import uuid

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models import Q
from django.utils import timezone
from pgvector.django import HnswIndex, VectorField

__all__ = [
    "EMBEDDING_DIMENSIONS",
    "ExtractionError",
    "Layer",
    "MemoryAccess",
    "MemoryRecord",
    "ScopeKind",
    "ScopePolicy",
]

# all-MiniLM-L6-v2, the embedding model every record is embedded with (providers.api).
EMBEDDING_DIMENSIONS = 384
TEXT_SEARCH_CONFIG = "english"


class Layer(models.TextChoices):
    WORKING = "working", "Working: turns, verbatim"
    EPISODIC = "episodic", "Episodic: summaries of sessions and stretches"
    SEMANTIC = "semantic", "Semantic: facts with provenance"
    PINNED = "pinned", "Pinned: blocks always placed in context"


class ScopeKind(models.TextChoices):
    USER = "user", "User"
    AGENT = "agent", "Agent"
    SESSION = "session", "Session"


class MemoryRecord(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # security's user id (no foreign key across contexts): whose memory this is.
    owner_id = models.UUIDField()
    agent_id = models.CharField(max_length=200, blank=True, default="")
    session_id = models.CharField(max_length=200, blank=True, default="")
    layer = models.CharField(max_length=16, choices=Layer.choices)
    speaker = models.CharField(max_length=200, blank=True, default="")
    # Pinned blocks: the block's name ("persona", "human" …), unique per owner.
    label = models.CharField(max_length=100, blank=True, default="")
    text = models.TextField()
    # The caller's id for an imported turn, kept for provenance and export.
    external_id = models.CharField(max_length=200, blank=True, default="")
    # SHA-256 of what makes a turn the same turn: re-importing it is a no-op.
    content_hash = models.CharField(max_length=64, blank=True, default="")
    # Facts: "subject|attribute" for facts that hold one value at a time ("anna|lives_in").
    fact_key = models.CharField(max_length=200, blank=True, default="")
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True, blank=True)
    # Who said it is part of what was said, weighing less than the words (ADR 0038).
    search = models.GeneratedField(
        expression=SearchVector("text", config=TEXT_SEARCH_CONFIG, weight="C")
        + SearchVector("speaker", config=TEXT_SEARCH_CONFIG, weight="D"),
        output_field=SearchVectorField(),
        db_persist=True,
    )
    metadata = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField(default=timezone.now)
    importance = models.FloatField(default=0.5)
    valid_from = models.DateTimeField(null=True, blank=True)
    valid_to = models.DateTimeField(null=True, blank=True)
    recorded_at = models.DateTimeField(default=timezone.now)
    superseded_at = models.DateTimeField(null=True, blank=True)
    superseded_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="supersedes"
    )
    # The turns a fact or summary came from.
    provenance = ArrayField(models.UUIDField(), default=list, blank=True)
    # How a fact was extracted ("rules", "llm", "manual") and its consolidation decision.
    extracted_by = models.CharField(max_length=16, blank=True, default="")
    expires_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # Listings page through this order (newest said first) as an index range, of
            # a layer or (what is believed now) of every layer.
            models.Index(
                fields=["owner_id", "layer", "-occurred_at", "-recorded_at", "id"],
                name="memrec_owner_layer_order",
            ),
            models.Index(
                fields=["owner_id", "-occurred_at", "-recorded_at", "id"],
                name="memrec_owner_live_order",
                condition=Q(superseded_at__isnull=True, expired_at__isnull=True),
            ),
            models.Index(fields=["owner_id", "session_id", "occurred_at"], name="memrec_session"),
            models.Index(
                fields=["owner_id", "fact_key"],
                name="memrec_fact_key",
                condition=~Q(fact_key="") & Q(superseded_at__isnull=True),
            ),
            models.Index(
                fields=["expires_at"],
                name="memrec_expires",
                condition=Q(expires_at__isnull=False, expired_at__isnull=True),
            ),
            HnswIndex(
                fields=["embedding"],
                name="memrec_embedding_hnsw",
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
                condition=Q(expired_at__isnull=True),
            ),
            GinIndex(
                fields=["search"], name="memrec_search_gin", condition=Q(expired_at__isnull=True)
            ),
            GinIndex(fields=["metadata"], name="memrec_metadata_gin", opclasses=["jsonb_path_ops"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["owner_id", "content_hash"],
                name="memrec_turn_once",
                condition=Q(layer="working") & ~Q(content_hash=""),
            ),
            models.UniqueConstraint(
                fields=["owner_id", "label"],
                name="memrec_pinned_label_once",
                condition=Q(layer="pinned", expired_at__isnull=True, superseded_at__isnull=True),
            ),
            models.CheckConstraint(
                condition=Q(importance__gte=0) & Q(importance__lte=1),
                name="memrec_importance_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.layer}: {self.text[:60]}"

    @property
    def scope_kind(self) -> str:
        if self.session_id:
            return ScopeKind.SESSION
        if self.agent_id:
            return ScopeKind.AGENT
        return ScopeKind.USER


class MemoryAccess(models.Model):
    """How often, and when last, searches returned a record.

    A narrow table of its own: counting in the record's row would rewrite a row that
    carries an embedding, and with it its HNSW and GIN index entries, on every search.
    """

    record = models.OneToOneField(
        MemoryRecord, primary_key=True, on_delete=models.CASCADE, related_name="access"
    )
    count = models.PositiveIntegerField(default=0)
    last_accessed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.record_id}: {self.count}"


class ExtractionError(models.Model):
    """A fact extractor's answer that could not be used: kept, with the turns it was about,
    so nothing is dropped silently and the turns can be extracted again."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner_id = models.UUIDField(db_index=True)
    extractor = models.CharField(max_length=16)
    turn_ids = ArrayField(models.UUIDField(), default=list)
    error = models.TextField()
    # What the extractor answered, cut to a bounded size.
    raw_output = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["owner_id", "-created_at"], name="memexerr_owner")]

    def __str__(self) -> str:
        return f"{self.extractor}: {self.error[:60]}"


class ScopePolicy(models.Model):
    """How long an owner's memories of one scope kind live and how fast they fade.

    Without a row the defaults of ``services.policy`` apply.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner_id = models.UUIDField()
    scope = models.CharField(max_length=16, choices=ScopeKind.choices)
    # None: never expires.
    ttl_days = models.FloatField(null=True, blank=True)
    half_life_days = models.FloatField(default=180.0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner_id", "scope"], name="memscope_once"),
            models.CheckConstraint(condition=Q(half_life_days__gt=0), name="memscope_half_life"),
            models.CheckConstraint(
                condition=Q(ttl_days__isnull=True) | Q(ttl_days__gt=0), name="memscope_ttl"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.owner_id} {self.scope}"
