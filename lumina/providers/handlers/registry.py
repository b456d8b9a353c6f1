"""Registry subscriptions: any change to a provider or its models refreshes the caches.

The writing process already dropped its own copy; these run wherever the event is
delivered (in process, or a Celery worker) and bump the shared version, so every other
process rebuilds its catalogue within a second.
"""

from __future__ import annotations

from lumina.kernel.bus import subscribe
from lumina.providers.events.registry import ProviderAdded, ProviderRemoved, ProviderUpdated
from lumina.providers.selectors.registry import catalogue_invalidate, endpoint_forget


@subscribe(ProviderAdded, ProviderUpdated)
def refresh_catalogue(event: ProviderAdded | ProviderUpdated) -> None:
    catalogue_invalidate()


@subscribe(ProviderRemoved)
def forget_removed_provider(event: ProviderRemoved) -> None:
    endpoint_forget(event.provider_id)
    catalogue_invalidate()
