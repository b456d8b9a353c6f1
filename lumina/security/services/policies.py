"""Policy use-cases: write Cedar policies (every text change is a new version), and try them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from django.db import IntegrityError, transaction

from lumina.kernel.bus import publish
from lumina.kernel.errors import ApplicationError, ConflictError
from lumina.kernel.permissions import NAME, catalogue
from lumina.security import cedar
from lumina.security.events.policies import PolicyCreated, PolicyDeleted, PolicyUpdated
from lumina.security.models.policies import Policy, PolicyVersion
from lumina.security.selectors import policies as selectors
from lumina.security.selectors.rbac import user_find
from lumina.security.selectors.tokens import TokenInfo
from lumina.security.services.authorization import (
    POLICY_EXEMPT_ACTIONS,
    Explanation,
    cache_invalidate,
    explain,
    require,
)
from lumina.security.types import Actor, Resource

MANAGE = "security.policies.manage"
MAX_POLICY_CHARS = 65_536
MAX_NAME_CHARS = 200


def policy_text_validate(text: object) -> int:
    """Check Cedar text; ``ApplicationError`` naming ``policy`` with Cedar's messages."""
    if not isinstance(text, str) or not text.strip():
        raise _invalid("policy", "Give the policy's Cedar text.")
    if len(text) > MAX_POLICY_CHARS:
        raise _invalid("policy", f"At most {MAX_POLICY_CHARS} characters.")
    try:
        count = cedar.validate(text, tuple(catalogue()), exempt=POLICY_EXEMPT_ACTIONS)
    except cedar.PolicyTextError as error:
        raise ApplicationError(
            f"Invalid policy: {error.problems[0]}",
            fields={"policy": error.problems},
            code="invalid",
        ) from None
    return count


def _invalid(field: str, message: str) -> ApplicationError:
    return ApplicationError(message, fields={field: [message]}, code="invalid")


def policy_name_validate(name: object) -> str:
    cleaned = name.strip() if isinstance(name, str) else ""
    if not cleaned or len(cleaned) > MAX_NAME_CHARS:
        raise _invalid("name", f"A policy name is 1–{MAX_NAME_CHARS} characters.")
    return cleaned


def _name_taken(name: str, exclude: uuid.UUID | None = None) -> ConflictError | None:
    if Policy.objects.filter(name__iexact=name).exclude(pk=exclude).exists():
        return ConflictError(f"A policy named {name} exists.", fields={"name": ["already exists"]})
    return None


def _common(actor: Actor) -> dict:
    return {"actor_id": actor.user_id, "ip_address": actor.ip_address}


def policy_create(
    *, actor: Actor, name: str, cedar_text: str, description: str = "", enabled: bool = True
) -> Policy:
    require(actor, MANAGE)
    name = policy_name_validate(name)
    policy_text_validate(cedar_text)
    if conflict := _name_taken(name):
        raise conflict
    try:
        with transaction.atomic():
            policy = Policy.objects.create(
                name=name, description=description, enabled=enabled, version=1
            )
            PolicyVersion.objects.create(
                policy=policy, version=1, cedar=cedar_text, created_by_id=actor.user_id
            )
            publish(
                PolicyCreated(
                    policy_id=policy.id,
                    policy_name=name,
                    policy_version=1,
                    enabled=enabled,
                    cedar=cedar_text,
                    **_common(actor),
                )
            )
            cache_invalidate()
    except IntegrityError:
        raise _name_taken(name) or ConflictError("The policy changed meanwhile.") from None
    return policy


def policy_update(
    *,
    actor: Actor,
    policy_id: uuid.UUID,
    name: str | None = None,
    description: str | None = None,
    enabled: bool | None = None,
    cedar_text: str | None = None,
) -> Policy:
    """Change a policy; new Cedar text becomes a new version, the old ones are kept."""
    require(actor, MANAGE)
    selectors.policy_get(policy_id=policy_id)
    if name is not None:
        name = policy_name_validate(name)
        if conflict := _name_taken(name, exclude=policy_id):
            raise conflict
    if cedar_text is not None:
        policy_text_validate(cedar_text)
    try:
        with transaction.atomic():
            policy = Policy.objects.select_for_update().get(pk=policy_id)
            changes: dict[str, Any] = {}
            if name is not None and name != policy.name:
                changes["name"] = name
            if description is not None and description != policy.description:
                changes["description"] = description
            if enabled is not None and enabled != policy.enabled:
                changes["enabled"] = enabled
            new_text = None
            if cedar_text is not None and cedar_text != selectors.policy_current_text(
                policy=policy
            ):
                new_text = cedar_text
                changes["version"] = policy.version + 1
            if not changes:
                return policy
            for field, value in changes.items():
                setattr(policy, field, value)
            policy.save(update_fields=[*changes, "updated_at"])
            if new_text is not None:
                PolicyVersion.objects.create(
                    policy=policy,
                    version=policy.version,
                    cedar=new_text,
                    created_by_id=actor.user_id,
                )
            publish(
                PolicyUpdated(
                    policy_id=policy.id,
                    policy_name=policy.name,
                    policy_version=policy.version,
                    enabled=policy.enabled,
                    changed=tuple("policy" if key == "version" else key for key in changes),
                    cedar=new_text,
                    **_common(actor),
                )
            )
            cache_invalidate()
    except IntegrityError:
        raise ConflictError(
            "A policy with that name exists.", fields={"name": ["already exists"]}
        ) from None
    return policy


def policy_delete(*, actor: Actor, policy_id: uuid.UUID) -> None:
    """Delete a policy and its versions; the audit log keeps every text it ever had."""
    require(actor, MANAGE)
    policy = selectors.policy_get(policy_id=policy_id)
    with transaction.atomic():
        event = PolicyDeleted(
            policy_id=policy.id,
            policy_name=policy.name,
            policy_version=policy.version,
            **_common(actor),
        )
        policy.delete()
        publish(event)
        cache_invalidate()


def policy_evaluate(
    *,
    actor: Actor,
    principal: str,
    action: str,
    resource: Resource | None = None,
    ip: str | None = None,
    scopes: Sequence[str] | None = None,
    caller_context: str = "",
    mfa_verified: bool = False,
) -> Explanation:
    """What ``authorize`` would decide for ``principal`` (a user id or email, or
    ``system:<context>``), with the RBAC and policy parts of the answer.

    ``scopes`` set means "through an API token with these scopes".
    """
    require(actor, MANAGE)
    if not NAME.match(action):
        raise _invalid("action", f"{action!r} is not a permission name.")
    kind, sep, context = principal.partition(":")
    if sep and kind == "system":
        if not context:
            raise _invalid("principal", "Name the context: 'system:<context>'.")
        subject = Actor(user_id=None, context=context, ip_address=ip)
    else:
        user = user_find(reference=principal)
        if user is None:
            raise _invalid("principal", f"No user {principal!r}: give a user id or email.")
        # Any token id will do: it only marks the request as coming through a token.
        token = (
            TokenInfo(id=uuid.UUID(int=0), user_id=user.pk, scopes=tuple(scopes), expires_at=None)
            if scopes is not None
            else None
        )
        subject = Actor.for_user(
            user,
            token=token,
            mfa_verified=mfa_verified,
            context=caller_context or None,
            ip_address=ip,
        )
    return explain(subject, action, resource)
