"""Audit log reads: entries newest first, filtered."""

from __future__ import annotations

import datetime as dt
import uuid

from django.db.models import QuerySet

from lumina.security.models.audit import AuditEntry


def audit_entry_list(
    *,
    action: str | None = None,
    actor_id: uuid.UUID | None = None,
    outcome: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> QuerySet[AuditEntry]:
    """Entries newest first; ``since``/``until`` bound ``occurred_at`` (inclusive)."""
    entries = AuditEntry.objects.order_by("-sequence")
    if action:
        entries = entries.filter(action=action)
    if actor_id is not None:
        entries = entries.filter(actor_id=actor_id)
    if outcome:
        entries = entries.filter(outcome=outcome)
    if since is not None:
        entries = entries.filter(occurred_at__gte=since)
    if until is not None:
        entries = entries.filter(occurred_at__lte=until)
    return entries
