"""The usage ledger (raw, append-only, partitioned by month), its daily rollup, and budgets."""

from __future__ import annotations

import uuid

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models.functions import Now

from lumina.providers.types import UsageStatus

__all__ = ["Budget", "DailyRequests", "DailyUsage", "UsageRecord"]

STATUS_CHOICES = [(status.value, status.value) for status in UsageStatus]
# Money columns: US dollars to 1e-10, so a one-token request at the cheapest prices still
# costs something rather than rounding to zero.
MONEY = {"max_digits": 20, "decimal_places": 10}

USAGE_TABLE = "providers_usagerecord"
# The grouping key of the daily rollup.
DAILY_USAGE_KEY = (
    "day", "user_id", "token_id", "provider_id", "provider_name", "model", "operation",
)  # fmt: skip
USAGE_DEFAULT_PARTITION = f"{USAGE_TABLE}_default"
# The grouping key of the daily request rollup (latency histograms, outcomes).
DAILY_REQUESTS_KEY = (
    "day", "user_id", "everyone", "provider_name", "model", "operation", "status", "error_code",
)  # fmt: skip


class UsageRecord(models.Model):
    """One request's usage and cost, whatever its outcome: the raw, append-only ledger.

    The table is partitioned by month on ``occurred_at`` (migration
    ``0003_usage_ledger``), so its real primary key is ``(id, occurred_at)``: PostgreSQL
    requires the partition key in it. Django is told ``id`` alone is the key because
    Django 5.2's admin refuses composite-key models, and ``id`` (the request's UUID) is
    unique on its own. Ids are plain UUIDs, never foreign keys: the ledger outlives
    providers, deployments, users and tokens.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    occurred_at = models.DateTimeField(help_text="When the response completed (UTC).")
    recorded_at = models.DateTimeField(db_default=Now(), editable=False)
    request_id = models.CharField(max_length=200, blank=True, default="")
    operation = models.CharField(max_length=32, help_text='"chat" or "embeddings".')
    status = models.CharField(max_length=16, choices=STATUS_CHOICES)
    stream = models.BooleanField(default=False)
    requested_model = models.CharField(max_length=255, blank=True, default="")
    user_id = models.UUIDField(null=True, blank=True)
    token_id = models.UUIDField(null=True, blank=True)
    provider_id = models.UUIDField(null=True, blank=True)
    provider_name = models.CharField(max_length=64, blank=True, default="")
    deployment_id = models.UUIDField(null=True, blank=True)
    model = models.CharField(max_length=200, blank=True, default="")
    input_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    estimated = models.BooleanField(
        default=False, help_text="Lumina counted the tokens because the provider sent none."
    )
    cost = models.DecimalField(**MONEY, default=0, help_text="US dollars.")
    attempts = models.PositiveSmallIntegerField(default=1)
    latency_ms = models.FloatField(default=0.0)
    ttft_ms = models.FloatField(null=True, blank=True, help_text="Time to first token (streams).")
    error_code = models.CharField(max_length=100, blank=True, default="")
    attempt_log = models.JSONField(
        default=list,
        blank=True,
        help_text="Every call to a provider, when there was more than one or it failed.",
    )

    class Meta:
        db_table = USAGE_TABLE
        ordering = ("-occurred_at",)
        indexes = [
            models.Index(fields=["occurred_at"], name="usage_occurred"),
            models.Index(fields=["user_id", "occurred_at"], name="usage_user_occurred"),
            models.Index(fields=["token_id", "occurred_at"], name="usage_token_occurred"),
        ]

    def __str__(self) -> str:
        return f"{self.operation} {self.model or self.requested_model} {self.status} ${self.cost}"


class DailyUsage(models.Model):
    """The cost read model: one row per UTC day and grouping key, summed from the ledger.

    Kept by the ``UsageRecorded`` projection and rebuilt from the ledger by
    ``costs_rebuild``; cost reports read only this table.
    """

    day = models.DateField()
    user_id = models.UUIDField(null=True, blank=True)
    token_id = models.UUIDField(null=True, blank=True)
    provider_id = models.UUIDField(null=True, blank=True)
    provider_name = models.CharField(max_length=64, blank=True, default="")
    model = models.CharField(max_length=200, blank=True, default="")
    operation = models.CharField(max_length=32)
    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0, help_text="Requests whose status was not ok.")
    estimated = models.BigIntegerField(default=0, help_text="Requests with counted tokens.")
    input_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=24, decimal_places=10, default=0)

    class Meta:
        verbose_name_plural = "daily usage"
        ordering = ("-day", "provider_name", "model")
        constraints = [
            # NULL user/token/provider ids are one group each, not one group per row.
            models.UniqueConstraint(
                fields=DAILY_USAGE_KEY,
                name="daily_usage_key",
                nulls_distinct=False,
            ),
        ]
        indexes = [
            models.Index(fields=["user_id", "day"], name="daily_usage_user_day"),
            models.Index(fields=["token_id", "day"], name="daily_usage_token_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.provider_name}/{self.model} {self.requests} req ${self.cost}"


class DailyRequests(models.Model):
    """The latency and outcome read model: one row per UTC day, user, provider, model,
    operation, status and error code, with the requests' latency and TTFT histograms, and
    the same per day without the user (``everyone``), for readers of everyone's usage.

    Histograms count requests per log-spaced bucket (``selectors/histograms.py``, ADR 0033),
    so percentiles over any window are read from a few rows per day instead of a sort of
    the raw ledger. Kept by the same ``UsageRecorded`` projection as ``DailyUsage`` and
    rebuilt with it by ``costs_rebuild``.
    """

    day = models.DateField()
    user_id = models.UUIDField(null=True, blank=True)
    everyone = models.BooleanField(
        default=False,
        help_text="A total over every user (user_id empty): what readers of everyone's "
        "usage read, instead of summing one row per user.",
    )
    provider_name = models.CharField(max_length=64, blank=True, default="")
    model = models.CharField(max_length=200, blank=True, default="")
    operation = models.CharField(max_length=32)
    status = models.CharField(max_length=16, choices=STATUS_CHOICES)
    error_code = models.CharField(max_length=100, blank=True, default="")
    requests = models.BigIntegerField(default=0)
    # Sparse histograms: {"<bucket>": requests} for the buckets that have any (ADR 0033).
    latency_histogram = models.JSONField(default=dict, help_text="Requests per latency bucket.")
    ttft_histogram = models.JSONField(
        default=dict, help_text="Streams per time-to-first-token bucket."
    )

    class Meta:
        verbose_name_plural = "daily requests"
        ordering = ("-day", "provider_name", "model")
        constraints = [
            models.UniqueConstraint(
                fields=DAILY_REQUESTS_KEY, name="daily_requests_key", nulls_distinct=False
            ),
        ]
        indexes = [
            models.Index(fields=["everyone", "day"], name="daily_requests_everyone_day"),
            models.Index(fields=["user_id", "day"], name="daily_requests_user_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.provider_name}/{self.model} {self.status} {self.requests} req"


class Budget(models.Model):
    """Limits for one user or one API token: money per period and requests/tokens per minute."""

    class Scope(models.TextChoices):
        USER = "user"
        TOKEN = "token"  # noqa: S105 (an API token, not a secret)

    class Period(models.TextChoices):
        DAY = "day"
        WEEK = "week"  # ISO weeks: Monday 00:00 UTC
        MONTH = "month"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, blank=True, default="")
    scope = models.CharField(max_length=8, choices=Scope.choices)
    subject_id = models.UUIDField(help_text="The user's or the API token's id.")
    period = models.CharField(
        max_length=8,
        choices=Period.choices,
        default=Period.MONTH,
        help_text="Calendar period (UTC) that limit_usd applies to.",
    )
    limit_usd = models.DecimalField(
        max_digits=14,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="US dollars per period; empty for no money limit.",
    )
    requests_per_minute = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)]
    )
    tokens_per_minute = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)]
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("scope", "subject_id", "created_at")
        indexes = [models.Index(fields=["scope", "subject_id"], name="budget_subject")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(limit_usd__isnull=False)
                | models.Q(requests_per_minute__isnull=False)
                | models.Q(tokens_per_minute__isnull=False),
                name="budget_has_a_limit",
                violation_error_message="Set at least one of limit_usd, requests_per_minute "
                "and tokens_per_minute.",
            ),
        ]

    def __str__(self) -> str:
        return self.name or f"{self.scope} {self.subject_id}"
