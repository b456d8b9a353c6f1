"""The registry at a glance, for the console's providers page: every provider with its
models, each model's routing state now (ranked for ``lumina/auto``, or left out and why:
an open circuit shows here), what the probe verified, and prices."""

from __future__ import annotations

import dataclasses

from asgiref.sync import async_to_sync

from lumina.providers.resilience import circuit_states, latency_stats
from lumina.providers.selectors.registry import (
    DeploymentInfo,
    catalogue,
    deployment_list,
    provider_list,
)
from lumina.providers.selectors.selection import AUTO, select
from lumina.providers.types import Needs, ProviderDTO
from lumina.security.api import Actor, require


@dataclasses.dataclass(frozen=True)
class ModelOverview:
    model: DeploymentInfo
    routing: str  # "available (rank 1): …", "left out: …", "enabled" or "disabled"


@dataclasses.dataclass(frozen=True)
class ProviderOverview:
    provider: ProviderDTO
    models: tuple[ModelOverview, ...]


def provider_overview(*, actor: Actor) -> list[ProviderOverview]:
    """Every provider (``providers.read``) with its models and where each stands for routing,
    as ``POST /api/v1/providers/select`` answers for ``lumina/auto`` now."""
    require(actor, "providers.read")
    snapshot = catalogue()
    selection = select(
        catalogue=snapshot,
        model=AUTO,
        needs=Needs(),
        # The breaker is async (its Redis client lives on a loop): one short loop here.
        breaker_states=async_to_sync(circuit_states)(snapshot.deployments),
        stats=latency_stats(),
        allow_empty=True,
    )
    routing = {
        c.deployment.id: f"available (rank {c.rank}): {c.reason}" for c in selection.candidates
    }
    routing.update({r.deployment.id: f"left out: {r.reason}" for r in selection.rejections})
    models: dict = {}
    for model in deployment_list():
        state = routing.get(model.id, "enabled") if model.enabled else "disabled"
        models.setdefault(model.provider.id, []).append(ModelOverview(model=model, routing=state))
    return [
        ProviderOverview(provider=provider, models=tuple(models.get(provider.id, ())))
        for provider in provider_list()
    ]
