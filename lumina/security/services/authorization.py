"""The one decision point: may this actor do this action (on this resource)?

Order: an inactive or anonymous actor is refused; a token must carry a scope matching
the action; then RBAC allows system actors (they are code), superusers, a held role
whose patterns match (a role that ``requires_mfa`` counts only for an MFA-verified
session, never through an API token) or an object grant on the resource. What RBAC
allows, the enabled Cedar policies may still forbid; they never allow on their own,
and ``security.policies.manage`` is left to RBAC so no policy can lock its fixers out.

``authorize`` only answers (it sits on every request and stays fast); ``require``
enforces, publishing ``AccessDenied`` and raising ``PermissionDeniedError`` on refusal.

Caching: each process keeps every user's roles and group ids, guardian permission ids
and the compiled policies in memory, filed under the ``security.authorization``
generation (``lumina.kernel.generations``). A change made through the services bumps it
in its transaction: this process drops its caches at once, every other one within
``generations.STALENESS_SECONDS`` of the commit, with or without Redis.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from typing import Any

import structlog
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models.signals import m2m_changed, post_delete

from lumina.kernel import generations
from lumina.kernel.bus import publish
from lumina.kernel.errors import PermissionDeniedError
from lumina.kernel.permissions import matcher
from lumina.security import cedar
from lumina.security.events.rbac import AccessDenied
from lumina.security.selectors import policies as policy_selectors
from lumina.security.selectors import rbac as rbac_selectors
from lumina.security.types import Actor, Decision, Resource

logger = structlog.get_logger(__name__)

GENERATION = "security.authorization"
MAX_CACHED_PRINCIPALS = 10_000
MAX_CACHED_GRANTS_PER_PRINCIPAL = 1_000
# Decided by RBAC alone, so that no policy (nor a broken one) locks out those who fix policies.
POLICY_EXEMPT_ACTIONS = frozenset({"security.policies.manage"})
_MISSING = object()


class _Principal:
    """A user's roles (direct and through groups) and groups, with per-action answers."""

    __slots__ = ("_by_action", "grants", "group_ids", "role_names", "roles")

    def __init__(self, roles: list[rbac_selectors.HeldRole], group_ids: tuple[int, ...]) -> None:
        self.roles = tuple(roles)
        self.role_names = tuple(role.name for role in roles)
        self.group_ids = group_ids
        self._by_action: dict[str, tuple[rbac_selectors.HeldRole, ...]] = {}
        # (permission id, object id) -> grant id or None: object grants looked up so far.
        self.grants: dict[tuple[int, str], str | None] = {}

    def roles_for(self, action: str) -> tuple[rbac_selectors.HeldRole, ...]:
        found = self._by_action.get(action)
        if found is None:
            found = tuple(
                role
                for role in self.roles
                if any(matcher(pattern)(action) for pattern in role.permissions)
            )
            self._by_action[action] = found
        return found


@dataclasses.dataclass
class _PolicyState:
    compiled: cedar.CompiledPolicies
    names: dict[str, str]


class _Caches:
    def __init__(self, generation: generations.Value | None) -> None:
        self.generation = generation
        self.principals: dict[uuid.UUID, _Principal] = {}
        self.permission_ids: dict[tuple[str, str], int | None] = {}
        self.policies: _PolicyState | None = None


_caches = _Caches(generation=None)
_lock = threading.Lock()


def _current() -> _Caches:
    """The caches filled under the current generation (fresh ones when it is unknown)."""
    global _caches
    caches = _caches
    generation = generations.current(GENERATION)
    if generation is not None and generation == caches.generation:
        return caches
    with _lock:
        if generation is None or generation != _caches.generation:
            _caches = _Caches(generation)
        return _caches


def cache_invalidate() -> None:
    """Forget cached roles, grants and policies here now, and everywhere after commit.

    Call it inside the transaction that makes the change, after the change.
    """
    generations.bump(GENERATION)


def cache_clear() -> None:
    """Drop this process's caches without telling other processes (tests, benchmarks)."""
    global _caches
    with _lock:
        _caches = _Caches(generation=None)


def _membership_changed(sender: Any, **kwargs: Any) -> None:
    if kwargs.get("action", "post_").startswith("post_"):
        cache_invalidate()


def connect_cache_invalidation() -> None:
    """Invalidate on writes that bypass the RBAC services (admin console group edits)."""
    m2m_changed.connect(
        _membership_changed,
        sender=get_user_model().groups.through,
        dispatch_uid="security.authorization.groups",
    )
    post_delete.connect(
        _membership_changed, sender=Group, dispatch_uid="security.authorization.group_deleted"
    )


def _principal(caches: _Caches, user_id: uuid.UUID) -> _Principal:
    principal = caches.principals.get(user_id)
    if principal is None:
        principal = _Principal(
            rbac_selectors.roles_held(user_id=user_id),
            rbac_selectors.group_ids_of(user_id=user_id),
        )
        if len(caches.principals) >= MAX_CACHED_PRINCIPALS:
            caches.principals.pop(next(iter(caches.principals)), None)
        caches.principals[user_id] = principal
    return principal


def _policies(caches: _Caches) -> _PolicyState:
    state = caches.policies
    if state is None:
        statements: list[cedar.Statement] = []
        broken: list[tuple[str, str]] = []
        names: dict[str, str] = {}
        for policy in policy_selectors.policies_in_force():
            names[policy.rule] = policy.name
            try:
                statements += cedar.statements(policy.cedar, policy.rule)
            except ValueError as error:
                logger.error("stored policy does not parse", rule=policy.rule, error=str(error))
                broken.append((policy.rule, str(error)))
        state = _PolicyState(cedar.CompiledPolicies(statements, broken), names)
        caches.policies = state
    return state


# --- The decision -----------------------------------------------------------------------


def authorize(actor: Actor, action: str, resource: Resource | None = None) -> Decision:
    """Whether ``actor`` may do ``action`` (on ``resource``), and why."""
    caches = _current()
    refusal = _refusal(actor, action)
    if refusal is not None:
        return refusal
    decision = _rbac(caches, actor, action, resource)
    if not decision.allowed:
        return decision
    return _apply_policies(caches, actor, action, resource, decision)


def require(actor: Actor, action: str, resource: Resource | None = None) -> Decision:
    """``authorize``, enforced: a refusal is published as ``AccessDenied`` and raised.

    Call it before opening a transaction, so that rolling the transaction back does not
    take the ``AccessDenied`` event with it.
    """
    decision = authorize(actor, action, resource)
    if decision.allowed:
        return decision
    publish(
        AccessDenied(
            action=action,
            reason=decision.reason,
            rules=decision.rules,
            resource_type=resource.type if resource else None,
            resource_id=resource.id if resource else None,
            caller_context=actor.context or "",
            token_id=actor.token_id,
            actor_id=actor.user_id,
            ip_address=actor.ip_address,
        )
    )
    logger.info("access denied", action=action, actor=actor.principal, reason=decision.reason)
    raise PermissionDeniedError(f"You may not {action}: {decision.reason}.")


def _refusal(actor: Actor, action: str) -> Decision | None:
    if not actor.is_active:
        return Decision(False, action, "the account is inactive")
    if actor.user_id is None and not actor.is_system:
        return Decision(False, action, "not authenticated")
    if actor.scopes is not None and not any(matcher(scope)(action) for scope in actor.scopes):
        return Decision(False, action, f"the API token lacks a scope for {action}", ("scope",))
    return None


def _rbac(caches: _Caches, actor: Actor, action: str, resource: Resource | None) -> Decision:
    if actor.is_system:
        return Decision(True, action, f"system actor {actor.context}", (f"system:{actor.context}",))
    if actor.is_superuser:
        return Decision(True, action, "superuser", ("superuser",))
    assert actor.user_id is not None  # noqa: S101 (anonymous actors were refused before)
    principal = _principal(caches, actor.user_id)
    matching = principal.roles_for(action)
    mfa_usable = actor.mfa_verified and actor.token_id is None
    usable = [role.name for role in matching if mfa_usable or not role.requires_mfa]
    if usable:
        return Decision(
            True, action, f"role {usable[0]} allows {action}", tuple(f"role:{n}" for n in usable)
        )
    if resource is not None and resource.id:
        grant = _object_grant(caches, principal, actor.user_id, action, resource)
        if grant is not None:
            return Decision(
                True,
                action,
                f"object grant on {resource.type} {resource.id}",
                (f"grant:{grant}",),
            )
    if matching:
        names = ", ".join(role.name for role in matching)
        why = (
            "cannot be used through an API token"
            if actor.token_id is not None
            else "requires MFA verification"
        )
        return Decision(
            False, action, f"role {names} {why}", tuple(f"role:{r.name}" for r in matching)
        )
    return Decision(False, action, f"no role or grant allows {action}")


def _object_grant(
    caches: _Caches, principal: _Principal, user_id: uuid.UUID, action: str, resource: Resource
) -> str | None:
    key = (resource.type, action)
    permission_id = caches.permission_ids.get(key, _MISSING)
    if permission_id is _MISSING:
        permission_id = rbac_selectors.permission_id_for(resource_type=resource.type, action=action)
        caches.permission_ids[key] = permission_id
    if permission_id is None:
        return None
    grant_key = (permission_id, str(resource.id))
    try:
        return principal.grants[grant_key]  # type: ignore[index]
    except KeyError:
        pass
    grant = rbac_selectors.object_grant_find(
        user_id=user_id,
        group_ids=principal.group_ids,
        permission_id=permission_id,  # type: ignore[arg-type]
        resource_id=str(resource.id),
    )
    if len(principal.grants) >= MAX_CACHED_GRANTS_PER_PRINCIPAL:
        principal.grants.clear()
    principal.grants[grant_key] = grant  # type: ignore[index]
    return grant


def _apply_policies(
    caches: _Caches, actor: Actor, action: str, resource: Resource | None, decision: Decision
) -> Decision:
    if action in POLICY_EXEMPT_ACTIONS:
        return decision
    state = _policies(caches)
    if state.compiled.broken:
        rules = tuple(rule for rule, _ in state.compiled.broken)
        return Decision(False, action, f"policy {_names(state, rules)} cannot be loaded", rules)
    applicable = state.compiled.for_action(action)
    if applicable is None:
        return decision
    outcome = _evaluate(caches, applicable[0], actor, action, resource)
    refusal = _policy_decision(state, outcome, action)
    # Not ``or``: a refusing Decision is falsy.
    return decision if refusal is None else refusal


def _policy_decision(state: _PolicyState, outcome: cedar.Outcome, action: str) -> Decision | None:
    if outcome.forbidding:
        names = _names(state, outcome.forbidding)
        return Decision(False, action, f"forbidden by policy {names}", outcome.forbidding)
    if outcome.errors:
        rules = tuple(dict.fromkeys(rule for rule, _ in outcome.errors))
        named = tuple(rule for rule in rules if rule in state.names)
        subject = f"policy {_names(state, named)}" if named else "the policies"
        message = outcome.errors[0][1]
        return Decision(False, action, f"{subject} could not be evaluated ({message})", rules)
    return None


def _names(state: _PolicyState, rules: tuple[str, ...]) -> str:
    return ", ".join(state.names.get(rule, rule) for rule in rules)


def _evaluate(
    caches: _Caches,
    policy_set: Any,
    actor: Actor,
    action: str,
    resource: Resource | None,
) -> cedar.Outcome:
    scopes = sorted(actor.scopes or ())
    if actor.is_system:
        principal = (cedar.SYSTEM, actor.context or "")
        roles: tuple[str, ...] = ()
    else:
        principal = (cedar.USER, str(actor.user_id))
        roles = _principal(caches, actor.user_id).role_names  # type: ignore[arg-type]
    return cedar.evaluate(
        policy_set,
        principal=principal,
        principal_attributes={
            "id": principal[1],
            "email": actor.email or "",
            "roles": roles,
            "is_staff": actor.is_staff,
            "is_superuser": actor.is_superuser,
            "mfa_verified": actor.mfa_verified,
            "token_scopes": scopes,
            "via_token": actor.token_id is not None,
        },
        action=action,
        resource_type=resource.type if resource else None,
        resource_id=str(resource.id) if resource and resource.id is not None else None,
        resource_attributes=resource.attributes if resource else {},
        context={
            "ip": actor.ip_address or "",
            "scopes": scopes,
            "caller_context": actor.context or "",
        },
    )


# --- Explanations (the policy evaluation endpoint) --------------------------------------


@dataclasses.dataclass(frozen=True)
class Explanation:
    """A decision with its parts: what RBAC said and what every applicable policy said."""

    decision: Decision
    rbac: Decision
    roles: tuple[str, ...]
    policies_applicable: tuple[str, ...]
    policies_forbidding: tuple[str, ...]
    policy_errors: tuple[str, ...]


def explain(actor: Actor, action: str, resource: Resource | None = None) -> Explanation:
    """Like ``authorize``, but evaluates the policies even when RBAC already refused."""
    caches = _current()
    rbac = _refusal(actor, action)
    if rbac is None:
        rbac = _rbac(caches, actor, action, resource)
    roles: tuple[str, ...] = ()
    if actor.user_id is not None and actor.is_active:
        roles = _principal(caches, actor.user_id).role_names
    state = _policies(caches)
    exempt = action in POLICY_EXEMPT_ACTIONS
    applicable = None if exempt else state.compiled.for_action(action)
    broken = () if exempt else tuple(rule for rule, _ in state.compiled.broken)
    errors = tuple(f"{rule}: {message}" for rule, message in state.compiled.broken)
    outcome = cedar.Outcome(forbidding=(), errors=())
    if applicable is not None and (actor.user_id is not None or actor.is_system):
        outcome = _evaluate(caches, applicable[0], actor, action, resource)
        errors += tuple(f"{rule}: {message}" for rule, message in outcome.errors)
    decision = rbac
    if rbac.allowed:
        if broken:
            decision = Decision(
                False, action, f"policy {_names(state, broken)} cannot be loaded", broken
            )
        else:
            refusal = _policy_decision(state, outcome, action)
            decision = rbac if refusal is None else refusal
    return Explanation(
        decision=decision,
        rbac=rbac,
        roles=roles,
        policies_applicable=applicable[1] if applicable else (),
        policies_forbidding=outcome.forbidding,
        policy_errors=errors,
    )


def holds(actor: Actor, action: str, resource: Resource | None = None) -> bool:
    """Whether the actor holds ``action``: through its token's scopes and RBAC, policies aside.

    What holding a permission means when deciding whether someone may hand it on: a
    policy forbidding people to *use* a permission does not stop them administering it.
    """
    caches = _current()
    return _refusal(actor, action) is None and _rbac(caches, actor, action, resource).allowed


# --- Object access (contexts' own objects: documents …) ---------------------------------


def object_authorize(
    actor: Actor,
    action: str,
    resource: Resource,
    *,
    owner_id: uuid.UUID | None = None,
    manage: str | None = None,
) -> Decision:
    """Whether ``actor`` may do ``action`` on one object that belongs to a person.

    Unlike ``authorize``, a role holding ``action`` does not open the object: people's
    objects are private. The object is open to its owner (every action), to whoever holds
    an object grant of ``action`` on it (directly or through a group), and to holders of
    ``manage`` (a role-wide permission such as ``documents.manage``). Token scopes and
    policies apply as in ``authorize``.
    """
    caches = _current()
    refusal = _refusal(actor, action)
    if refusal is not None:
        return refusal
    decision = _object_rbac(caches, actor, action, resource, owner_id, manage)
    if not decision.allowed:
        return decision
    return _apply_policies(caches, actor, action, resource, decision)


def object_require(
    actor: Actor,
    action: str,
    resource: Resource,
    *,
    owner_id: uuid.UUID | None = None,
    manage: str | None = None,
) -> Decision:
    """``object_authorize``, enforced like ``require`` (audited ``AccessDenied``, raised)."""
    decision = object_authorize(actor, action, resource, owner_id=owner_id, manage=manage)
    if decision.allowed:
        return decision
    publish(
        AccessDenied(
            action=action,
            reason=decision.reason,
            rules=decision.rules,
            resource_type=resource.type,
            resource_id=resource.id,
            caller_context=actor.context or "",
            token_id=actor.token_id,
            actor_id=actor.user_id,
            ip_address=actor.ip_address,
        )
    )
    logger.info("access denied", action=action, actor=actor.principal, reason=decision.reason)
    raise PermissionDeniedError(f"You may not {action}: {decision.reason}.")


def _object_rbac(
    caches: _Caches,
    actor: Actor,
    action: str,
    resource: Resource,
    owner_id: uuid.UUID | None,
    manage: str | None,
) -> Decision:
    if actor.is_system:
        return Decision(True, action, f"system actor {actor.context}", (f"system:{actor.context}",))
    if actor.is_superuser:
        return Decision(True, action, "superuser", ("superuser",))
    assert actor.user_id is not None  # noqa: S101 (anonymous actors were refused before)
    if owner_id is not None and actor.user_id == owner_id:
        return Decision(True, action, f"owner of {resource.type} {resource.id}", ("owner",))
    principal = _principal(caches, actor.user_id)
    if resource.id:
        grant = _object_grant(caches, principal, actor.user_id, action, resource)
        if grant is not None:
            return Decision(
                True, action, f"object grant on {resource.type} {resource.id}", (f"grant:{grant}",)
            )
    if manage is not None and _refusal(actor, manage) is None:
        managing = _rbac(caches, actor, manage, None)
        if managing.allowed:
            return Decision(True, action, managing.reason, managing.rules)
    return Decision(False, action, f"no ownership or grant allows {action} on this object")


def object_holds(
    actor: Actor,
    action: str,
    resource: Resource,
    *,
    owner_id: uuid.UUID | None = None,
    manage: str | None = None,
) -> bool:
    """``holds`` for one person's object: what the actor may hand on, policies aside."""
    caches = _current()
    if _refusal(actor, action) is not None:
        return False
    return _object_rbac(caches, actor, action, resource, owner_id, manage).allowed


def object_ids_granted(actor: Actor, action: str, resource_type: str) -> frozenset[str]:
    """Ids of the objects of ``resource_type`` on which ``actor`` holds a grant of ``action``
    (directly or through a group), within its token's scopes."""
    if _refusal(actor, action) is not None or actor.user_id is None:
        return frozenset()
    caches = _current()
    principal = _principal(caches, actor.user_id)
    return frozenset(
        rbac_selectors.object_ids_granted(
            user_id=actor.user_id,
            group_ids=principal.group_ids,
            resource_type=resource_type,
            action=action,
        )
    )
