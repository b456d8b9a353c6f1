"""Events about routing: a deployment's circuit breaker opening and closing again."""

from __future__ import annotations

import dataclasses
import uuid

from lumina.kernel.events import DomainEvent

__all__ = ["CircuitClosed", "CircuitOpened"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class CircuitOpened(DomainEvent):
    """Selection skips this deployment until a trial request succeeds."""

    name = "providers.CircuitOpened"
    version = 1

    deployment_id: uuid.UUID
    provider_name: str
    model: str
    reason: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class CircuitClosed(DomainEvent):
    """A trial request succeeded: the deployment takes traffic again."""

    name = "providers.CircuitClosed"
    version = 1

    deployment_id: uuid.UUID
    provider_name: str
    model: str
    reason: str
