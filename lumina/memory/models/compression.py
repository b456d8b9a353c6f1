"""Compressed segments: a stretch of a conversation replaced by a summary, kept whole so
``expand`` can hand back its original turns."""

from __future__ import annotations

import uuid

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

__all__ = ["CompressedSegment", "SummaryMethod"]


class SummaryMethod(models.TextChoices):
    LLM = "llm", "Summarised by a chat model"
    EXTRACTIVE = "extractive", "Sentences picked from the turns"
    NONE = "none", "Dropped: no room for a summary"


class CompressedSegment(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # security's user id (no foreign key across contexts); only its owner may expand it.
    owner_id = models.UUIDField(db_index=True)
    session = models.CharField(max_length=200, blank=True, default="")
    # The original messages, verbatim, in order; positions in the compressed request.
    turns = models.JSONField(default=list)
    first_index = models.PositiveIntegerField()
    last_index = models.PositiveIntegerField()
    summary = models.TextField(blank=True, default="")
    method = models.CharField(max_length=16, choices=SummaryMethod.choices)
    # Earlier segments whose summaries were among these turns: a summary of summaries.
    children = ArrayField(models.UUIDField(), default=list, blank=True)
    tokens_original = models.PositiveIntegerField(default=0)
    tokens_summary = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["owner_id", "-created_at"], name="memseg_owner_created"),
        ]

    def __str__(self) -> str:
        return f"segment {self.id} ({self.last_index - self.first_index + 1} turns)"
