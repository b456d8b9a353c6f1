"""Security's data: attribute-based policies written in Cedar, with every version kept."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower


class Policy(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    # The version in force; older ones stay in PolicyVersion for history.
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name",)
        verbose_name_plural = "policies"
        constraints = [models.UniqueConstraint(Lower("name"), name="policy_name_ci_unique")]

    def __str__(self) -> str:
        return self.name


class PolicyVersion(models.Model):
    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    cedar = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("policy", "-version")
        constraints = [
            models.UniqueConstraint(fields=["policy", "version"], name="policy_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.policy} v{self.version}"
