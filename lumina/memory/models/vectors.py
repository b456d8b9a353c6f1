"""Vector collections and their records.

One table holds every collection's records. The ``vector`` columns have no fixed
dimension; each collection gets partial HNSW indexes on ``(vector_N::vector(dim))``
restricted to its own rows (docs/adr/0015-vector-collections.md). Two vector slots let a
re-embedding fill the idle slot while searches keep reading the active one.
"""

from __future__ import annotations

import uuid

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models import Q
from pgvector.django import VectorField

__all__ = ["Collection", "Distance", "IndexType", "VectorRecord"]

MAX_DIMENSION = 2000  # pgvector's HNSW limit for ``vector``
# Chosen by benchmarks/vectors.py (ADR 0034): on 100,000 clustered 384-d vectors m=16,
# ef_construction=64 needed ef_search 400 for recall@10 0.98; this graph reaches it at
# about 100 (the default ef_search) for about twice the build time.
DEFAULT_HNSW_M = 24
DEFAULT_HNSW_EF_CONSTRUCTION = 128


class Distance(models.TextChoices):
    COSINE = "cosine", "Cosine"
    L2 = "l2", "Euclidean (L2)"
    IP = "ip", "Inner product"


class IndexType(models.TextChoices):
    # What the HNSW graph stores: half precision halves the index, so more of it stays in
    # shared buffers, and answers are re-scored on the full-precision column.
    HALFVEC = "halfvec", "Half precision (re-scored exactly)"
    VECTOR = "vector", "Single precision"


class Collection(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Unique per owner: another user's names are neither visible nor in the way.
    name = models.CharField(max_length=100)
    owner_id = models.UUIDField(db_index=True, help_text="The user who owns the collection.")
    description = models.TextField(blank=True, default="")
    embedding_model = models.CharField(max_length=200)
    dimension = models.PositiveIntegerField()
    distance = models.CharField(max_length=10, choices=Distance.choices, default=Distance.COSINE)
    hnsw_m = models.PositiveSmallIntegerField(default=DEFAULT_HNSW_M)
    hnsw_ef_construction = models.PositiveSmallIntegerField(default=DEFAULT_HNSW_EF_CONSTRUCTION)
    default_ef_search = models.PositiveSmallIntegerField(default=100)
    index_type = models.CharField(
        max_length=10, choices=IndexType.choices, default=IndexType.HALFVEC, editable=False
    )
    # Which of VectorRecord.vector_0/vector_1 searches read.
    active_slot = models.PositiveSmallIntegerField(default=0)
    # A re-embedding in progress fills the other slot with this model's vectors.
    pending_model = models.CharField(max_length=200, blank=True, default="")
    pending_dimension = models.PositiveIntegerField(null=True, blank=True)
    # Top-level metadata keys any record has had: a filter on another key is refused.
    metadata_fields = models.JSONField(default=list, blank=True)
    record_count = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner_id", "name"], name="memory_collection_owner_name"
            ),
            models.CheckConstraint(
                condition=Q(dimension__gte=1) & Q(dimension__lte=MAX_DIMENSION),
                name="memory_collection_dimension_range",
            ),
            models.CheckConstraint(
                condition=Q(active_slot__in=[0, 1]), name="memory_collection_active_slot"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def reembedding(self) -> bool:
        return bool(self.pending_model)


class VectorRecord(models.Model):
    id = models.BigAutoField(primary_key=True)
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="records")
    external_id = models.CharField(max_length=200)
    text = models.TextField(blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    vector_0 = VectorField(null=True, blank=True)
    vector_1 = VectorField(null=True, blank=True)
    search = models.GeneratedField(
        expression=SearchVector("text", config="english"),
        output_field=SearchVectorField(),
        db_persist=True,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["collection", "external_id"], name="memory_vectorrecord_external_id"
            ),
        ]
        indexes = [
            GinIndex(fields=["search"], name="memory_vectorrecord_search"),
            GinIndex(
                fields=["metadata"],
                name="memory_vectorrecord_metadata",
                opclasses=["jsonb_path_ops"],
            ),
        ]

    def __str__(self) -> str:
        return self.external_id
