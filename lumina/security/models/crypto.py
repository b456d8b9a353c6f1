"""Envelope encryption data: one wrapped data key per stored secret."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone


class DataKey(models.Model):
    """A data-encryption key, stored only wrapped by a key-encryption key (KEK).

    The ciphertext itself lives in the owner's record; deleting this row makes it
    unreadable for good (crypto-shredding).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.CharField(
        max_length=255,
        help_text="What the secret belongs to, e.g. providers.Provider:<id>:api_key.",
    )
    kek_version = models.PositiveIntegerField(help_text="Version of the KEK that wraps this key.")
    wrapped_key = models.BinaryField(editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    rotated_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ("created_at",)
        indexes = [
            models.Index(fields=["owner"], name="datakey_owner"),
            models.Index(fields=["kek_version"], name="datakey_kek_version"),
        ]

    def __str__(self) -> str:
        return f"data key {self.id} ({self.owner}, KEK v{self.kek_version})"
