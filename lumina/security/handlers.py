"""Security's subscriptions: every security event goes to the audit chain; reset links are mailed.

Durable events (``SecurityEvent.durable``) are appended as they are published, through
the chain's own connection, so that a rollback of the publisher's transaction cannot
remove them; every event, durable or not, is also appended by the handler once its
transaction commits, which finds a durable one already there (appends are idempotent by
event id) or records it then if the early append failed.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from lumina.kernel.bus import add_publish_hook, subscribe
from lumina.kernel.events import Event
from lumina.security.events.base import SecurityEvent
from lumina.security.events.sessions import PasswordResetRequested
from lumina.security.services.audit import audit_append
from lumina.security.services.passwords import password_reset_mail_send

logger = structlog.get_logger(__name__)


def record_security_event(event: SecurityEvent) -> None:
    audit_append(event=event)


def record_durable_events(events: Sequence[Event]) -> None:
    for event in events:
        if isinstance(event, SecurityEvent) and event.durable:
            try:
                audit_append(event=event)
            except Exception:
                # The outbox row still carries it if the publisher's transaction commits.
                logger.exception(
                    "durable audit append failed", event_id=str(event.id), event_name=event.name
                )


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
add_publish_hook(record_durable_events)


@subscribe(PasswordResetRequested)
def mail_password_reset_link(event: PasswordResetRequested) -> None:
    """After the request commits. With the Celery transport a worker sends it, so the
    answer's timing does not tell whether a link went out; in-process it is sent right
    after the commit, within the request."""
    if event.mailed and event.user_id is not None:
        password_reset_mail_send(user_id=event.user_id)
