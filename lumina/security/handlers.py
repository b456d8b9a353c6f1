"""Audit subscriptions: one handler appends every security event to the audit chain."""

from __future__ import annotations

from lumina.kernel.bus import subscribe
from lumina.security.events.base import SecurityEvent
from lumina.security.services.audit import audit_append


def record_security_event(event: SecurityEvent) -> None:
    audit_append(event=event)


def security_event_classes() -> list[type[SecurityEvent]]:
    """Every concrete (named) subclass of ``SecurityEvent``, however deep."""
    found: list[type[SecurityEvent]] = []
    pending = list(SecurityEvent.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "name" in cls.__dict__ and cls not in found:
            found.append(cls)
    return found


def subscribe_audit_log() -> None:
    """Subscribe the audit handler to every security event declared so far (idempotent).

    Runs at import, from ``SecurityConfig.ready()`` after the events package, so every
    event class of the context is known; call it again after declaring new ones.
    """
    subscribe(*security_event_classes())(record_security_event)


subscribe_audit_log()
