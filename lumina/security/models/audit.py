"""The audit log: an append-only, hash-chained record of every security event.

See ``lumina.security.services.audit`` for the hash encoding and
``lumina.security.audit_sql`` for the trigger that refuses updates and deletes.
"""

from __future__ import annotations

from django.db import models

from lumina.security.audit_sql import AUDIT_TABLE


class AuditEntry(models.Model):
    class Outcome(models.TextChoices):
        SUCCESS = "success"
        FAILURE = "failure"
        DENIED = "denied"

    # Assigned densely (previous + 1) under the append lock, so a gap means removed rows.
    sequence = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(unique=True, editable=False)
    event_version = models.PositiveSmallIntegerField(default=1)
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField()
    action = models.CharField(
        max_length=200, help_text="The event name, e.g. security.LoginFailed."
    )
    actor_id = models.UUIDField(null=True, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    target = models.CharField(max_length=255, blank=True, default="")
    details = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        db_table = AUDIT_TABLE
        ordering = ("sequence",)
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["action", "sequence"], name="auditentry_action"),
            models.Index(fields=["actor_id", "sequence"], name="auditentry_actor"),
            models.Index(fields=["outcome", "sequence"], name="auditentry_outcome"),
            models.Index(fields=["occurred_at"], name="auditentry_occurred_at"),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} ({self.outcome})"
