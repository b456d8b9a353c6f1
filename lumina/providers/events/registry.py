"""Events about the provider registry. They name a provider, never its credentials.

``name`` and ``kind`` are the event's own class attributes (the event name and its
kind), so the provider's are ``provider_name`` and ``provider_kind``.
"""

from __future__ import annotations

import dataclasses
import uuid

from lumina.kernel.events import IntegrationEvent

__all__ = ["ProviderAdded", "ProviderRemoved", "ProviderUpdated"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProviderAdded(IntegrationEvent):
    name = "providers.ProviderAdded"
    version = 1

    provider_id: uuid.UUID
    provider_name: str
    provider_kind: str
    actor_id: uuid.UUID | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProviderUpdated(IntegrationEvent):
    """A provider's settings, credentials or models changed.

    ``changed`` lists the provider fields that changed (``api_key`` when the key was set
    or removed), or ``models`` when one of its deployments was added, changed or removed;
    ``deployment_id`` then says which.
    """

    name = "providers.ProviderUpdated"
    version = 1

    provider_id: uuid.UUID
    provider_name: str
    provider_kind: str
    revision: int
    changed: tuple[str, ...] = ()
    deployment_id: uuid.UUID | None = None
    actor_id: uuid.UUID | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProviderRemoved(IntegrationEvent):
    name = "providers.ProviderRemoved"
    version = 1

    provider_id: uuid.UUID
    provider_name: str
    provider_kind: str
    actor_id: uuid.UUID | None = None
