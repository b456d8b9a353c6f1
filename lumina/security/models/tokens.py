"""Security's data: personal API tokens (stored only as a SHA-256 digest of the secret)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone


class ApiToken(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, blank=True)
    # The first characters of the token, so people can tell their tokens apart.
    prefix = models.CharField(max_length=12, db_index=True)
    # Tokens carry 256 random bits, so a fast unsalted hash cannot be brute-forced and
    # lets authentication look the token up by an indexed equality match; a slow
    # password hash would add nothing but latency to every request.
    secret_hash = models.CharField(max_length=64, unique=True)
    # Permission patterns: "*", "<context>.*" or "<context>.<name>".
    scopes = ArrayField(models.CharField(max_length=100), default=list)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # The token that minted this one. A child never outlives it: it expires no later,
    # reaches no further, and is revoked (or deleted, with its user) with it.
    parent = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="children"
    )

    class Meta:
        verbose_name = "API token"
        indexes = [models.Index(fields=["user", "-created_at"], name="apitoken_user_created")]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})" if self.name else f"{self.prefix}…"
