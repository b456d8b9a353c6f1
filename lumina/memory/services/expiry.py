"""Expiry and purge: memories past their time to live leave search, then, by policy, the
database.

``records_expire_due`` runs periodically (the relay thread in-process, Celery beat
otherwise): records whose ``expires_at`` has passed get ``expired_at`` and leave the
search indexes, which cover only unexpired rows; their text stays for audit.
``records_purge`` (``manage.py memory purge``) deletes what expired long enough ago.
``records_decay_apply`` re-applies the scope policies' TTLs to stored records.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict

import structlog
from django.db import connection, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F
from django.utils import timezone

from lumina.kernel.bus import publish_many
from lumina.memory.events.records import STORED_BATCH, MemoryExpired
from lumina.memory.models.records import Layer, MemoryRecord, ScopeKind, ScopePolicy
from lumina.memory.services import policy

logger = structlog.get_logger(__name__)

EXPIRE_INTERVAL_SECONDS = 300.0
DEFAULT_PURGE_AFTER_DAYS = 30.0
EXPIRE_BATCH = 5000


def records_expire_due(*, now: dt.datetime | None = None) -> int:
    """Expire every record past its ``expires_at``; returns how many."""
    now = now or timezone.now()
    expired = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "UPDATE memory_memoryrecord SET expired_at = %s WHERE id IN ("
                " SELECT id FROM memory_memoryrecord WHERE expires_at <= %s"
                " AND expired_at IS NULL LIMIT %s FOR UPDATE SKIP LOCKED"
                ") RETURNING id, owner_id",
                [now, now, EXPIRE_BATCH],
            )
            rows = cursor.fetchall()
            by_owner: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
            for record_id, owner_id in rows:
                by_owner[owner_id].append(record_id)
            publish_many(
                [
                    MemoryExpired(owner_id=owner_id, record_ids=tuple(ids[i : i + STORED_BATCH]))
                    for owner_id, ids in by_owner.items()
                    for i in range(0, len(ids), STORED_BATCH)
                ]
            )
        expired += len(rows)
        if len(rows) < EXPIRE_BATCH:
            break
    if expired:
        logger.info("memories expired", count=expired)
    return expired


def records_purge(
    *, older_than_days: float = DEFAULT_PURGE_AFTER_DAYS, now: dt.datetime | None = None
) -> int:
    """Delete records that expired more than ``older_than_days`` ago; returns how many.

    Facts and blocks that pointed at a purged record keep their own rows (the pointer is
    cleared by the foreign key)."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(days=older_than_days)
    with transaction.atomic():
        deleted, _ = MemoryRecord.objects.filter(expired_at__lte=cutoff).delete()
    return deleted


def records_decay_apply(*, owner_id: uuid.UUID | None = None) -> int:
    """Set ``expires_at`` of stored, unexpired records from their owners' scope policies
    (after a policy changed); returns how many records changed."""
    owners = (
        [owner_id]
        if owner_id is not None
        else list(ScopePolicy.objects.values_list("owner_id", flat=True).distinct())
    )
    changed = 0
    for owner in owners:
        policies = policy.policies_for(owner)
        for scope, rule in policies.items():
            rows = MemoryRecord.objects.filter(owner_id=owner, expired_at__isnull=True).exclude(
                layer=Layer.PINNED
            )
            if scope == ScopeKind.SESSION:
                rows = rows.exclude(session_id="")
            elif scope == ScopeKind.AGENT:
                rows = rows.filter(session_id="").exclude(agent_id="")
            else:
                rows = rows.filter(session_id="", agent_id="")
            if rule.ttl_days is None:
                changed += rows.exclude(expires_at__isnull=True).update(expires_at=None)
            else:
                changed += rows.update(
                    expires_at=ExpressionWrapper(
                        F("recorded_at") + dt.timedelta(days=rule.ttl_days),
                        output_field=DateTimeField(),
                    )
                )
    return changed
