"""Seeding the offline ``local`` provider: written once per database, never in production's way.

A fresh install lists ``all-MiniLM-L6-v2`` (real embeddings) and, outside production,
``lumina-dev-chat`` (the development echo model), so the pipeline runs with no keys. Each
model is seeded once: a ``Seed`` mark records it, so a model or provider an operator deletes
stays deleted across ``migrate``, and one they disable stays disabled. Production
(``LUMINA_ENV=production``) is never seeded with the development model. Selection keeps it
out of ``lumina/auto`` whenever a real chat model is enabled (``selectors/selection.py``).
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import structlog
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from lumina.providers.models import Deployment, Provider, Seed
from lumina.providers.selectors.registry import catalogue_invalidate, provider_dto
from lumina.providers.types import Capability, ProviderDTO, ProviderKind

logger = structlog.get_logger(__name__)

LOCAL_PROVIDER = "local"
LOCAL_PRICE_SOURCE = "local"
DEV_CHAT_MODEL = "lumina-dev-chat"
LOCAL_DEPLOYMENTS: tuple[dict[str, Any], ...] = (
    {
        # Deterministic development model, not an LLM: lets the pipeline run with no keys.
        "name": DEV_CHAT_MODEL,
        "development": True,
        "capabilities": [
            Capability.CHAT,
            Capability.STREAMING,
            Capability.JSON_MODE,
            Capability.TOOLS,
        ],
        "context_window": 8192,
    },
    {
        "name": "all-MiniLM-L6-v2",
        "development": False,
        "capabilities": [Capability.EMBEDDINGS],
        "context_window": 256,
    },
)


def seed_name(model: str) -> str:
    return f"{LOCAL_PROVIDER}/{model}"


def _seeds_for_this_environment() -> list[dict[str, Any]]:
    production = settings.LUMINA_ENV == "production"
    return [spec for spec in LOCAL_DEPLOYMENTS if not (production and spec["development"])]


def local_provider_ensure() -> ProviderDTO | None:
    """Seed the ``local`` provider's models that were never seeded in this database.

    Returns the local provider (None when there is none, or the name ``local`` is taken by
    another kind). Like the built-in roles this is seed data written at ``migrate``: it
    publishes no events (an outbox row per migrate would be noise) and refreshes the
    catalogue of every process directly.
    """
    specs = _seeds_for_this_environment()
    with transaction.atomic():
        marked = set(
            Seed.objects.filter(name__in=[seed_name(s["name"]) for s in specs]).values_list(
                "name", flat=True
            )
        )
        due = [spec for spec in specs if seed_name(spec["name"]) not in marked]
        provider = Provider.objects.select_for_update().filter(name=LOCAL_PROVIDER).first()
        if not due:
            local = provider is not None and provider.kind == ProviderKind.LOCAL
            return provider_dto(provider) if local else None
        if provider is None:
            provider = Provider(id=uuid.uuid4(), name=LOCAL_PROVIDER, kind=ProviderKind.LOCAL)
            provider.full_clean()
            provider.save(force_insert=True)
        elif provider.kind != ProviderKind.LOCAL:
            logger.warning("a provider named local is not of kind local; not touching it")
            return None
        present = set(provider.deployments.values_list("name", flat=True))
        created = []
        for spec in due:
            if spec["name"] in present:
                continue
            deployment = Deployment(
                id=uuid.uuid4(),
                provider=provider,
                name=spec["name"],
                upstream_model=spec["name"],
                capabilities=[c.value for c in spec["capabilities"]],
                context_window=spec["context_window"],
                input_price=Decimal(0),
                output_price=Decimal(0),
                price_source=LOCAL_PRICE_SOURCE,
            )
            deployment.full_clean()
            deployment.save(force_insert=True)
            created.append(spec["name"])
        Seed.objects.bulk_create(
            [Seed(name=seed_name(spec["name"])) for spec in due], ignore_conflicts=True
        )
        catalogue_invalidate()
        transaction.on_commit(catalogue_invalidate)
        logger.info("local provider seeded", models=created)
    return provider_dto(provider)


def local_provider_ensure_after_migrate(sender: Any, *, using: str = DEFAULT_DB_ALIAS, **_: Any):
    """``post_migrate`` receiver: a fresh install lists a chat and an embedding model."""
    if using != DEFAULT_DB_ALIAS:
        return
    tables = set(connections[using].introspection.table_names())
    needed = {Provider._meta.db_table, Deployment._meta.db_table, Seed._meta.db_table}
    if needed <= tables:
        local_provider_ensure()
