"""The provider registry: providers, and the models (deployments) each one serves."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from lumina.providers.types import Capability, ProviderKind

__all__ = ["Deployment", "Price", "Provider"]

NAME_VALIDATOR = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$",
    "Use 1-64 lowercase letters, digits, '.', '_' or '-', starting and ending with a "
    "letter or digit.",
    code="invalid_name",
)
# A deployment's public name may contain ':' and '@' (e.g. "llama3.1:8b"), never '/',
# which separates provider and model in qualified names.
MODEL_NAME_VALIDATOR = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,199}$",
    "Use letters, digits, '.', '_', ':', '@', '+' or '-' (no '/'), starting with a letter "
    "or digit.",
    code="invalid_model_name",
)
TAG_VALIDATOR = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$",
    "Use letters, digits, '.', '_', ':' or '-'.",
    code="invalid_tag",
)

KIND_CHOICES = [(kind.value, kind.value) for kind in ProviderKind]
CAPABILITY_CHOICES = [(capability.value, capability.value) for capability in Capability]


def validate_base_url(value: str) -> None:
    """http(s) with a host; no credentials, query or fragment, since keys go in ``api_key``.

    Where it leads is checked by the services when it is set (the outbound guard), not
    here: a provider saved before the operator's policy tightened can still be changed
    (disabled, say) without moving it.

    Django's URLValidator is not used: it refuses single-label hosts such as ``vllm`` or
    ``ollama`` that self-hosted servers on a private network commonly have.
    """
    if not value:
        return
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValidationError("Enter a valid URL.", code="invalid_url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("Enter an http:// or https:// URL with a host.", code="invalid_url")
    if any(char.isspace() for char in value) or (port is not None and not 0 < port < 65536):
        raise ValidationError("Enter a valid URL.", code="invalid_url")
    if parts.username is not None or parts.password is not None:
        raise ValidationError(
            "Credentials may not be part of the URL; set the API key instead.",
            code="credentials_in_url",
        )
    if parts.query or parts.fragment:
        raise ValidationError("The URL may not have a query or fragment.", code="invalid_url")


def _price_field(*, null: bool) -> models.DecimalField:
    # Ten decimal places hold any per-token price of LiteLLM's table exactly per million.
    return models.DecimalField(
        max_digits=20,
        decimal_places=10,
        null=null,
        blank=null,
        default=None if null else 0,
        validators=[MinValueValidator(0)],
        help_text="US dollars per million tokens.",
    )


class Provider(models.Model):
    """An upstream AI provider account: where to call and with which credentials."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=64, unique=True, validators=[NAME_VALIDATOR])
    kind = models.CharField(max_length=32, choices=KIND_CHOICES)
    base_url = models.CharField(
        max_length=500, blank=True, default="", validators=[validate_base_url]
    )
    # Only ever the envelope ciphertext from security's encrypt_secret; never plaintext.
    api_key = models.TextField(blank=True, default="", editable=False)
    enabled = models.BooleanField(default=True)
    priority = models.IntegerField(default=0)
    weight = models.PositiveIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(10_000)]
    )
    max_concurrency = models.PositiveIntegerField(
        default=64, validators=[MinValueValidator(1), MaxValueValidator(100_000)]
    )
    connect_timeout = models.FloatField(
        default=5.0, validators=[MinValueValidator(0.01), MaxValueValidator(3600)]
    )
    read_timeout = models.FloatField(
        default=60.0, validators=[MinValueValidator(0.01), MaxValueValidator(3600)]
    )
    api_version = models.CharField(max_length=40, blank=True, default="")
    tags = ArrayField(
        models.CharField(max_length=64, validators=[TAG_VALIDATOR]), default=list, blank=True
    )
    revision = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        # Spelled out so no field that might hold a secret ever lands in a log line.
        return f"<Provider {self.name} ({self.kind})>"

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key)

    @property
    def secret_owner(self) -> str:
        return f"providers.provider:{self.id}"

    def clean(self) -> None:
        if self.kind != ProviderKind.LOCAL and not self.base_url:
            raise ValidationError({"base_url": "A base URL is required for this kind."})
        if self.kind == ProviderKind.AZURE_OPENAI and not self.api_version:
            raise ValidationError({"api_version": "Azure OpenAI needs an api_version."})


class Deployment(models.Model):
    """One model as one provider serves it, with its capabilities and prices."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="deployments")
    name = models.CharField(max_length=200, validators=[MODEL_NAME_VALIDATOR])
    upstream_model = models.CharField(max_length=200)
    aliases = ArrayField(
        models.CharField(max_length=200, validators=[MODEL_NAME_VALIDATOR]),
        default=list,
        blank=True,
    )
    capabilities = ArrayField(
        models.CharField(max_length=32, choices=CAPABILITY_CHOICES), default=list, blank=True
    )
    # Written by the probe: {capability: {"ok", "latency_ms", "checked_at", "error"}}.
    verified_capabilities = models.JSONField(default=dict, blank=True)
    context_window = models.PositiveIntegerField(default=8192, validators=[MinValueValidator(1)])
    max_output_tokens = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)]
    )
    input_price = _price_field(null=False)
    cached_input_price = _price_field(null=True)
    cache_write_price = _price_field(null=True)
    output_price = _price_field(null=False)
    reasoning_price = _price_field(null=True)
    price_source = models.CharField(max_length=100, blank=True, default="manual")
    enabled = models.BooleanField(default=True)
    tags = ArrayField(
        models.CharField(max_length=64, validators=[TAG_VALIDATOR]), default=list, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("provider__name", "name")
        constraints = [
            models.UniqueConstraint(fields=["provider", "name"], name="deployment_provider_name"),
        ]

    def __str__(self) -> str:
        return f"{self.provider.name}/{self.name}" if self.provider_id else self.name

    def clean(self) -> None:
        # Within one provider a name or alias must pick one deployment, or the qualified
        # name "provider/name" would be ambiguous.
        errors: dict[str, list[str]] = {}
        aliases = list(self.aliases or [])
        if len(set(aliases)) != len(aliases):
            errors.setdefault("aliases", []).append("Aliases may not repeat.")
        if self.name in aliases:
            errors.setdefault("aliases", []).append("An alias may not repeat the model's name.")
        if self.provider_id is not None:
            siblings = Deployment.objects.filter(provider_id=self.provider_id).exclude(pk=self.pk)
            if self.name and siblings.filter(aliases__contains=[self.name]).exists():
                errors.setdefault("name", []).append(
                    f"{self.name} is an alias of another model of this provider."
                )
            if aliases:
                taken = sorted(
                    {
                        name
                        for row_name, row_aliases in siblings.filter(
                            models.Q(name__in=aliases) | models.Q(aliases__overlap=aliases)
                        ).values_list("name", "aliases")
                        for name in (row_name, *row_aliases)
                        if name in aliases
                    }
                )
                if taken:
                    errors.setdefault("aliases", []).append(
                        f"Already a name or alias of another model of this provider: "
                        f"{', '.join(taken)}."
                    )
        if errors:
            raise ValidationError(errors)


class Price(models.Model):
    """One model's list prices from a pricing table: the shipped file or an import.

    New deployments without prices of their own take them from here (then from the
    shipped file); an import also re-prices deployments whose prices came from a table.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # The table's key, e.g. "gpt-4o" or LiteLLM's "azure/gpt-4o".
    model = models.CharField(max_length=200, unique=True)
    # Whose price it is, e.g. "openai", "anthropic", "azure" (LiteLLM's litellm_provider).
    provider = models.CharField(max_length=64, blank=True, default="")
    mode = models.CharField(max_length=32, blank=True, default="chat")
    input_price = _price_field(null=False)
    cached_input_price = _price_field(null=True)
    cache_write_price = _price_field(null=True)
    output_price = _price_field(null=False)
    reasoning_price = _price_field(null=True)
    context_window = models.PositiveIntegerField(null=True, blank=True)
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    capabilities = ArrayField(
        models.CharField(max_length=32, choices=CAPABILITY_CHOICES), default=list, blank=True
    )
    source = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("model",)
        indexes = [models.Index(fields=["provider", "model"], name="price_provider_model")]

    def __str__(self) -> str:
        return self.model
