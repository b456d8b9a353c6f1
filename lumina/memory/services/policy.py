"""Per-scope time to live and decay: how long memories of a scope live, how fast they fade.

Defaults (no ``ScopePolicy`` row): a session's memories live 30 days, an agent's and a
user's forever; all fade with a half-life of 180 days. Pinned blocks never expire or fade.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid

from django.db import transaction
from django.utils import timezone

from lumina.memory.errors import InvalidInputError
from lumina.memory.models.records import Layer, ScopeKind, ScopePolicy
from lumina.memory.records_types import ScopePolicyDTO
from lumina.memory.selectors.record_access import READ, WRITE, owner_resolve
from lumina.security.api import Actor

DEFAULT_TTL_DAYS: dict[str, float | None] = {
    ScopeKind.USER: None,
    ScopeKind.AGENT: None,
    ScopeKind.SESSION: 30.0,
}
DEFAULT_HALF_LIFE_DAYS = 180.0
MAX_DAYS = 365.0 * 100


def scope_of(*, agent_id: str, session_id: str) -> str:
    return ScopeKind.SESSION if session_id else ScopeKind.AGENT if agent_id else ScopeKind.USER


# Searches read the policies on every call; they change rarely, and a change made here
# drops this process's copy at once (other processes' within CACHE_SECONDS).
CACHE_SECONDS = 10.0
_cache: dict[uuid.UUID, tuple[float, dict[str, ScopePolicyDTO]]] = {}


def policies_for(owner_id: uuid.UUID, *, cached: bool = False) -> dict[str, ScopePolicyDTO]:
    """The owner's policy for every scope kind (stored rows over the defaults)."""
    if cached:
        hit = _cache.get(owner_id)
        if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            return hit[1]
        found = policies_for(owner_id)
        if len(_cache) > 10_000:
            _cache.clear()
        _cache[owner_id] = (time.monotonic(), found)
        return found
    stored = {row.scope: row for row in ScopePolicy.objects.filter(owner_id=owner_id)}
    found = {}
    for scope in ScopeKind.values:
        row = stored.get(scope)
        found[scope] = (
            ScopePolicyDTO(owner_id, scope, row.ttl_days, row.half_life_days, default=False)
            if row is not None
            else ScopePolicyDTO(
                owner_id, scope, DEFAULT_TTL_DAYS[scope], DEFAULT_HALF_LIFE_DAYS, default=True
            )
        )
    return found


def expires_at_for(policy: ScopePolicyDTO, *, layer: str, start: dt.datetime) -> dt.datetime | None:
    """When a record stored now expires. The clock starts when it was recorded, not when it
    was said: an imported history is not dead on arrival."""
    if layer == Layer.PINNED or policy.ttl_days is None:
        return None
    return start + dt.timedelta(days=policy.ttl_days)


def scope_policy_list(*, actor: Actor, user_id: uuid.UUID | None = None) -> list[ScopePolicyDTO]:
    owner_id = owner_resolve(actor, action=READ, user_id=user_id)
    return list(policies_for(owner_id).values())


def scope_policy_set(
    *,
    actor: Actor,
    scope: str,
    ttl_days: float | None,
    half_life_days: float,
    user_id: uuid.UUID | None = None,
) -> ScopePolicyDTO:
    """Set a scope's TTL and half-life. Records already stored keep their expiry; a shorter
    TTL applies to them at the next ``memory consolidate``."""
    owner_id = owner_resolve(actor, action=WRITE, user_id=user_id)
    if scope not in ScopeKind.values:
        raise InvalidInputError("scope", f"One of {', '.join(ScopeKind.values)}.")
    if ttl_days is not None and not 0 < ttl_days <= MAX_DAYS:
        raise InvalidInputError("ttl_days", f"Between 0 (excluded) and {MAX_DAYS:g} days.")
    if not 0 < half_life_days <= MAX_DAYS:
        raise InvalidInputError("half_life_days", f"Between 0 (excluded) and {MAX_DAYS:g} days.")
    _cache.pop(owner_id, None)
    with transaction.atomic():
        ScopePolicy.objects.update_or_create(
            owner_id=owner_id,
            scope=scope,
            defaults={
                "ttl_days": ttl_days,
                "half_life_days": half_life_days,
                "updated_at": timezone.now(),
            },
        )
    return policies_for(owner_id)[scope]
