"""Builders of provider and deployment DTOs for selection and resilience tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from decimal import Decimal

from lumina.providers.types import (
    Capability,
    DeploymentDTO,
    Prices,
    ProviderDTO,
    ProviderKind,
)

CHAT = frozenset({Capability.CHAT, Capability.STREAMING})


def provider(
    name: str = "openai",
    *,
    priority: int = 0,
    weight: int = 1,
    max_concurrency: int = 64,
    enabled: bool = True,
    tags: Iterable[str] = (),
) -> ProviderDTO:
    return ProviderDTO(
        id=uuid.uuid4(),
        name=name,
        kind=ProviderKind.OPENAI_COMPATIBLE,
        base_url=f"http://127.0.0.1:9/{name}",
        has_api_key=False,
        enabled=enabled,
        priority=priority,
        weight=weight,
        max_concurrency=max_concurrency,
        tags=frozenset(tags),
    )


def deployment(
    name: str = "gpt-4o-mini",
    *,
    on: ProviderDTO | str | None = None,
    prices: tuple[str | float, str | float] = ("0.15", "0.60"),
    capabilities: Iterable[Capability] = CHAT,
    context_window: int = 128_000,
    aliases: Iterable[str] = (),
    enabled: bool = True,
    tags: Iterable[str] = (),
    priority: int = 0,
    weight: int = 1,
) -> DeploymentDTO:
    """A deployment of ``name``; ``on`` is its provider (or a new provider's name)."""
    if not isinstance(on, ProviderDTO):
        on = provider(on or f"p-{uuid.uuid4().hex[:6]}", priority=priority, weight=weight)
    return DeploymentDTO(
        id=uuid.uuid4(),
        provider=on,
        name=name,
        upstream_model=name,
        aliases=tuple(aliases),
        capabilities=frozenset(capabilities),
        context_window=context_window,
        prices=Prices(input=Decimal(str(prices[0])), output=Decimal(str(prices[1]))),
        enabled=enabled,
        tags=frozenset(tags),
    )
