"""The audit log: append security events to a hash chain, and verify the chain.

Every entry's ``hash`` is the hex SHA-256 of its canonical encoding: a JSON object
(``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)``,
encoded as UTF-8, so pure ASCII) with exactly these keys:

- ``sequence`` (integer), ``event_id`` (lower-case hyphenated UUID), ``event_version`` (integer),
- ``occurred_at`` and ``recorded_at`` (UTC ISO 8601 with microseconds, e.g.
  ``2025-01-31T12:00:00.000000+00:00``),
- ``action``, ``outcome``, ``target`` (strings), ``actor_id`` (UUID string or null),
  ``ip_address`` (PostgreSQL's text form of the address, or null),
- ``details`` (the event payload minus actor_id, ip_address and outcome, as PostgreSQL's
  JSONB returns it), and ``prev_hash``: the previous entry's ``hash``, or 64 zeros for the
  first entry.

An entry's ``target`` is the event's ``target`` field when it declares one, else the
value of its first own field (e.g. ``owner``, ``user_id``).

Appends run on the audit chain's own connection (``routers.AUDIT_DATABASE``), each in
its own short transaction that takes a transaction-level advisory lock, so concurrent
appends serialise, the chain stays linear, and an entry does not depend on the
transaction of whoever caused it. Sequence numbers are assigned densely (previous + 1),
so a gap means removed rows. Verification walks the chain in order and reports the first
broken link. The chain cannot show by itself that its newest entries were removed: a
signed head exported elsewhere (``audit_head_export``) is what shows that.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import ipaddress
import json
import uuid
from typing import Any

import structlog
from django.db import connections, transaction

from lumina.security.events.base import SecurityEvent
from lumina.security.models.audit import AuditEntry
from lumina.security.routers import AUDIT_DATABASE

logger = structlog.get_logger(__name__)

GENESIS_HASH = "0" * 64
# pg_advisory_xact_lock key of the audit chain ("LUMAUDIT" in ASCII).
AUDIT_LOCK_ID = 0x4C554D4155444954
VERIFY_CHUNK_SIZE = 2000
# Fields every security event carries; they have their own columns.
COMMON_FIELDS = frozenset({"actor_id", "ip_address", "outcome"})
_BASE_FIELDS = frozenset(f.name for f in dataclasses.fields(SecurityEvent))
_TARGET_MAX = AuditEntry._meta.get_field("target").max_length
_OUTCOME_MAX = AuditEntry._meta.get_field("outcome").max_length


@dataclasses.dataclass(frozen=True)
class VerifyResult:
    """``checked`` counts the entries examined, the broken one included."""

    ok: bool
    checked: int
    first_broken_seq: int | None
    reason: str
    # The newest entry's hash: record it elsewhere to detect removal of the chain's tail.
    head_hash: str | None = None


def _timestamp(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def canonical_bytes(entry: AuditEntry) -> bytes:
    """The bytes an entry's hash covers (see the module docstring)."""
    document = {
        "action": entry.action,
        "actor_id": str(entry.actor_id) if entry.actor_id is not None else None,
        "details": entry.details,
        "event_id": str(entry.event_id),
        "event_version": entry.event_version,
        "ip_address": entry.ip_address,
        "occurred_at": _timestamp(entry.occurred_at),
        "outcome": entry.outcome,
        "prev_hash": entry.prev_hash,
        "recorded_at": _timestamp(entry.recorded_at),
        "sequence": entry.sequence,
        "target": entry.target,
    }
    encoded = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return encoded.encode("utf-8")


def entry_hash(entry: AuditEntry) -> str:
    return hashlib.sha256(canonical_bytes(entry)).hexdigest()


def _clean(value: Any) -> Any:
    """Text PostgreSQL can store: no NUL characters, no lone surrogates."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _ip(value: object) -> str | None:
    if not value:
        return None
    try:
        address = ipaddress.ip_address(str(value).split("%", 1)[0])
    except ValueError:
        return None
    return str(address)


def _uuid(value: object) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _target(event: SecurityEvent, payload: dict[str, Any]) -> str:
    """The event's ``target`` field if it has one, else its first own field."""
    own = [f.name for f in dataclasses.fields(event) if f.name not in _BASE_FIELDS]
    if not own:
        return ""
    value = payload.get("target" if "target" in own else own[0])
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return _clean(text)[:_TARGET_MAX]


def _as_stored(details: dict[str, Any], ip_address: str | None) -> tuple[dt.datetime, Any, str]:
    """The database clock, and the details and address exactly as PostgreSQL will return them.

    JSONB and inet normalise what they store (key order, number and address spelling);
    hashing what they return keeps verification exact.
    """
    with connections[AUDIT_DATABASE].cursor() as cursor:
        cursor.execute(
            "SELECT clock_timestamp(), %s::jsonb, host(%s::inet)",
            [json.dumps(details), ip_address],
        )
        recorded_at, stored, address = cursor.fetchone()
    if isinstance(stored, str | bytes):
        stored = json.loads(stored)
    return recorded_at, stored, address


def audit_append(*, event: SecurityEvent) -> AuditEntry:
    """Append ``event`` to the chain; appending the same event again returns its entry."""
    payload = event.payload()
    details = _clean({k: v for k, v in payload.items() if k not in COMMON_FIELDS})
    with transaction.atomic(using=AUDIT_DATABASE):
        with connections[AUDIT_DATABASE].cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [AUDIT_LOCK_ID])
        existing = AuditEntry.objects.filter(event_id=event.id).first()
        if existing is not None:
            return existing
        last = AuditEntry.objects.order_by("-sequence").values_list("sequence", "hash").first()
        sequence, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
        recorded_at, details, address = _as_stored(details, _ip(event.ip_address))
        entry = AuditEntry(
            sequence=sequence,
            event_id=event.id,
            event_version=event.version,
            occurred_at=event.occurred_at,
            recorded_at=recorded_at,
            action=event.name,
            actor_id=_uuid(event.actor_id),
            ip_address=address,
            outcome=_clean(str(event.outcome))[:_OUTCOME_MAX],
            target=_target(event, payload),
            details=details,
            prev_hash=prev_hash,
        )
        entry.hash = entry_hash(entry)
        entry.save(force_insert=True)
    return entry


def audit_verify(*, chunk_size: int = VERIFY_CHUNK_SIZE) -> VerifyResult:
    """Walk the chain in order, recomputing hashes; report the first broken link."""
    checked = 0
    prev_hash = GENESIS_HASH
    expected_sequence = 1
    entries = AuditEntry.objects.order_by("sequence").iterator(chunk_size=chunk_size)
    for entry in entries:
        checked += 1
        problem = None
        if entry.sequence != expected_sequence:
            missing = (
                f"entry {expected_sequence} is missing"
                if entry.sequence == expected_sequence + 1
                else f"entries {expected_sequence}–{entry.sequence - 1} are missing"
            )
            problem = f"gap: {missing}"
        elif entry.prev_hash != prev_hash:
            problem = "prev_hash does not match the previous entry's hash"
        elif entry_hash(entry) != entry.hash:
            problem = "the entry's content does not match its hash"
        if problem is not None:
            logger.warning("audit chain broken", sequence=entry.sequence, reason=problem)
            return VerifyResult(False, checked, entry.sequence, problem, None)
        prev_hash = entry.hash
        expected_sequence = entry.sequence + 1
    head = prev_hash if checked else None
    return VerifyResult(True, checked, None, "intact", head)
