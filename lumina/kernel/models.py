"""Outbox rows (one per published event) and per-handler processing records."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now


class OutboxEvent(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"  # gave up after the maximum attempts; kept for replay

    id = models.UUIDField(primary_key=True, help_text="The event's own id.")
    name = models.CharField(max_length=200)
    version = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=20)
    payload = models.JSONField()
    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField(db_default=Now())
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    next_attempt_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("created_at",)
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="outbox_pending_due",
                condition=models.Q(status="pending"),
            ),
            models.Index(fields=["status", "created_at"], name="outbox_status_created"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version} ({self.status})"

    @property
    def key(self) -> str:
        return f"{self.name}.v{self.version}"


class ProcessedEvent(models.Model):
    """Marks that a handler has applied an event, so redelivery never applies it twice."""

    event_id = models.UUIDField()
    handler = models.CharField(max_length=255)
    processed_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event_id", "handler"], name="processed_once"),
        ]

    def __str__(self) -> str:
        return f"{self.handler} <- {self.event_id}"


class Generation(models.Model):
    """A named counter, bumped whenever what other processes cache under the name changes.

    See ``lumina.kernel.generations``: writers bump it in their transaction, readers
    compare a snapshot of every counter read at most once a second.
    """

    name = models.CharField(max_length=100, primary_key=True)
    # A fresh random value per bump, not a count: a value read inside a transaction that
    # later rolled back can never come back as another writer's value.
    value = models.UUIDField()

    def __str__(self) -> str:
        return f"{self.name} = {self.value}"
