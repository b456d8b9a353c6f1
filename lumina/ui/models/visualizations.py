"""Saved charts: a Vega-Lite spec whose ``data`` names a Lumina data source."""

from __future__ import annotations

import uuid

from django.db import models


class Visualization(models.Model):
    """One chart, owned by the user who made it.

    ``owner_id`` is the security context's user id, not a foreign key (contexts share no
    tables). ``spec`` is stored as the owner wrote it, with its data bindings
    (``{"name": "lumina:usage", "params": {...}}``); rendering swaps them for rows.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner_id = models.UUIDField(db_index=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    spec = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-updated_at", "id")
        indexes = [models.Index(fields=["owner_id", "-updated_at"], name="viz_owner_updated")]

    def __str__(self) -> str:
        return self.name
