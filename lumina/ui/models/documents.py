"""Collaborative documents, stored event-sourced.

A document's content is the Yjs document obtained by applying its updates in ``seq``
order. Every update a client sends is appended to ``DocumentUpdate`` before anyone else
sees it; ``DocumentSnapshot`` folds a prefix of them into one state (compaction), and
``DocumentVersion`` keeps a named state a user chose to keep. User ids are security's
(no foreign key across contexts).
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

__all__ = ["Document", "DocumentSnapshot", "DocumentUpdate", "DocumentVersion"]


class Document(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    title = models.CharField(max_length=200)
    owner_id = models.UUIDField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Soft delete: the history stays until purged; a deleted document has no room.
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["owner_id", "-updated_at"],
                name="ui_document_owner_idx",
                condition=Q(deleted_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return self.title


class DocumentUpdate(models.Model):
    """One Yjs (v1) update, in the order the server accepted it."""

    id = models.BigAutoField(primary_key=True)
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="updates")
    seq = models.BigIntegerField()
    data = models.BinaryField()
    user_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["document", "seq"], name="ui_documentupdate_seq_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.document_id} #{self.seq}"


class DocumentSnapshot(models.Model):
    """The document's state with every update up to ``upto_seq`` applied, as one update."""

    id = models.BigAutoField(primary_key=True)
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="snapshots")
    upto_seq = models.BigIntegerField()
    state = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["document", "upto_seq"], name="ui_documentsnapshot_seq_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.document_id} up to #{self.upto_seq}"


class DocumentVersion(models.Model):
    """A named state kept on request; restoring one appends a new update."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="versions")
    name = models.CharField(max_length=200)
    upto_seq = models.BigIntegerField()
    state = models.BinaryField()
    created_by_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["document", "-created_at"], name="ui_version_doc_idx")]

    def __str__(self) -> str:
        return self.name
