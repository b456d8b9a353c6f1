"""RBAC use-cases: roles, their assignment to users and groups, and object-level grants.

Nobody can hand on a permission they do not hold themselves: creating, changing,
assigning or removing a role needs every declared permission the role covers, and an
object grant needs the granted action on that object. So an Admin cannot make
themselves Owner, nor write a custom role equal to it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence

from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, transaction
from guardian.models import GroupObjectPermission, UserObjectPermission

from lumina.kernel.bus import publish
from lumina.kernel.errors import (
    ApplicationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
)
from lumina.kernel.permissions import catalogue, declared_matching, is_pattern, matcher
from lumina.security.events.rbac import (
    AccessDenied,
    GrantAdded,
    GrantRemoved,
    RoleAssigned,
    RoleCreated,
    RoleDeleted,
    RoleUnassigned,
    RoleUpdated,
)
from lumina.security.models.rbac import Role, RoleAssignment
from lumina.security.models.users import User
from lumina.security.selectors import rbac as selectors
from lumina.security.services.authorization import (
    cache_invalidate,
    holds,
    object_holds,
    object_require,
    require,
)
from lumina.security.types import Actor, Resource

MANAGE = "security.roles.manage"
MAX_PATTERNS = 100
ROLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,99}$")
RESOURCE_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,99}\.[a-z][a-z0-9_]{0,99}$")

# Owner-only: key rotation, decrypting stored secrets (providers decrypt as the system),
# identity providers, whose word about an email can sign a user in, and opening everyone's
# documents (people's private data: ADR 0029).
OWNER_ONLY = (
    "security.keys.rotate",
    "security.secrets.decrypt",
    "security.identity_providers.manage",
    "documents.manage",
)
BUILTIN_ROLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "Owner": ("Everything, including key rotation and decrypting stored secrets.", ("*",)),
    "Admin": (
        "Runs the platform: everything except the owner-only " + ", ".join(OWNER_ONLY) + ".",
        (
            "providers.*",
            "platform.*",
            "memory.*",
            "tools.*",
            "documents.read",
            "documents.comment",
            "documents.edit",
            "documents.share",
            "visualizations.*",
            "platform.health.read",
            "security.users.manage",
            "security.tokens.manage",
            "security.roles.manage",
            "security.policies.manage",
            "security.sessions.manage",
            "security.secrets.encrypt",
            "security.keys.read",
            "security.audit.read",
        ),
    ),
    "Developer": (
        "Builds with Lumina: calls models, reads and writes memories, runs tools, edits documents "
        "and charts.",
        (
            "providers.read",
            "providers.use",
            "memory.read",
            "memory.write",
            "tools.read",
            "tools.execute",
            "documents.read",
            "documents.edit",
            "visualizations.read",
            "visualizations.edit",
        ),
    ),
    "Viewer": ("Reads everything outside the security context.", ("*.read",)),
}


def _invalid(field: str, *messages: str) -> ApplicationError:
    return ApplicationError(messages[0], fields={field: list(messages)}, code="invalid")


# --- Built-in roles ---------------------------------------------------------------------


def roles_seed_builtin() -> list[Role]:
    """Create the built-in roles, or restore their names and permissions (idempotent).

    Descriptions and ``requires_mfa`` of existing built-in roles are left as people set them.
    """
    roles = []
    with transaction.atomic():
        for name, (description, permissions) in BUILTIN_ROLES.items():
            role = Role.objects.filter(name__iexact=name).first()
            if role is None:
                role = Role.objects.create(
                    name=name, description=description, permissions=list(permissions), built_in=True
                )
            elif (role.name, role.built_in, role.permissions) != (name, True, list(permissions)):
                role.name, role.built_in, role.permissions = name, True, list(permissions)
                role.save(update_fields=["name", "built_in", "permissions", "updated_at"])
            roles.append(role)
        cache_invalidate()
    return roles


# --- Validation -------------------------------------------------------------------------


def role_permissions_validate(permissions: Iterable[object]) -> list[str]:
    """The patterns, de-duplicated; ``ApplicationError`` naming ``permissions`` if any is bad."""
    cleaned: list[str] = []
    problems: list[str] = []
    for pattern in permissions:
        if not isinstance(pattern, str) or not is_pattern(pattern) or len(pattern) > 200:
            problems.append(
                f"{str(pattern)[:200]!r} is not a permission pattern: use a name such as "
                "'providers.read', '<context>.*', '*.read' or '*'."
            )
        elif not declared_matching(pattern):
            problems.append(f"{pattern!r} matches no declared permission.")
        elif pattern not in cleaned:
            cleaned.append(pattern)
    if not cleaned and not problems:
        problems.append("Give at least one permission pattern.")
    if len(cleaned) > MAX_PATTERNS:
        problems.append(f"At most {MAX_PATTERNS} patterns.")
    if problems:
        raise _invalid("permissions", *problems)
    return cleaned


def role_name_validate(name: object) -> str:
    cleaned = name.strip() if isinstance(name, str) else ""
    if not ROLE_NAME.match(cleaned):
        raise _invalid(
            "name",
            "A role name is 1–100 letters, digits, spaces, dots, dashes or underscores.",
        )
    return cleaned


def role_hand_on_missing(actor: Actor, patterns: Iterable[str]) -> list[str]:
    """The declared permissions ``patterns`` cover that the actor does not hold."""
    patterns = tuple(patterns)
    return [
        name
        for name in catalogue()
        if any(matcher(pattern)(name) for pattern in patterns) and not holds(actor, name)
    ]


def role_hand_on_check(actor: Actor, patterns: Iterable[str], *, what: str) -> None:
    """Refuse (and audit) handing on permissions the actor does not hold."""
    missing = role_hand_on_missing(actor, patterns)
    if missing:
        _refuse_hand_on(actor, missing, what=what)


def _refuse_hand_on(actor: Actor, missing: Sequence[str], *, what: str) -> None:
    listed = ", ".join(missing[:10]) + (" …" if len(missing) > 10 else "")
    reason = f"{what} covers permissions the actor does not hold: {listed}"
    publish(
        AccessDenied(
            action=MANAGE,
            reason=reason,
            caller_context=actor.context or "",
            token_id=actor.token_id,
            actor_id=actor.user_id,
            ip_address=actor.ip_address,
        )
    )
    raise PermissionDeniedError(f"You cannot hand on permissions you do not hold: {listed}.")


def _common(actor: Actor) -> dict:
    return {"actor_id": actor.user_id, "ip_address": actor.ip_address}


# --- Roles ------------------------------------------------------------------------------


def role_create(
    *,
    actor: Actor,
    name: str,
    permissions: Sequence[str],
    description: str = "",
    requires_mfa: bool = False,
) -> Role:
    require(actor, MANAGE)
    name = role_name_validate(name)
    patterns = role_permissions_validate(permissions)
    role_hand_on_check(actor, patterns, what=f"role {name}")
    if Role.objects.filter(name__iexact=name).exists():
        raise ConflictError(f"A role named {name} exists.", fields={"name": ["already exists"]})
    try:
        with transaction.atomic():
            role = Role.objects.create(
                name=name, description=description, permissions=patterns, requires_mfa=requires_mfa
            )
            publish(
                RoleCreated(
                    role_id=role.id,
                    role_name=role.name,
                    permissions=tuple(patterns),
                    requires_mfa=requires_mfa,
                    **_common(actor),
                )
            )
            cache_invalidate()
    except IntegrityError:
        raise ConflictError(
            f"A role named {name} exists.", fields={"name": ["already exists"]}
        ) from None
    return role


def role_update(
    *,
    actor: Actor,
    role_id: uuid.UUID,
    name: str | None = None,
    description: str | None = None,
    permissions: Sequence[str] | None = None,
    requires_mfa: bool | None = None,
) -> Role:
    """Change a role. Built-in roles keep their name and permissions."""
    require(actor, MANAGE)
    role = selectors.role_get(role_id=role_id)
    changes: dict[str, object] = {}
    if name is not None and name != role.name:
        if role.built_in:
            raise _invalid("name", "Built-in roles cannot be renamed.")
        changes["name"] = role_name_validate(name)
        taken = Role.objects.filter(name__iexact=changes["name"]).exclude(pk=role.pk).exists()
        if taken:
            raise ConflictError(
                "A role with that name exists.", fields={"name": ["already exists"]}
            )
    if permissions is not None:
        patterns = role_permissions_validate(permissions)
        if patterns != role.permissions:
            if role.built_in:
                raise _invalid("permissions", "Built-in roles' permissions cannot be changed.")
            changes["permissions"] = patterns
    if description is not None and description != role.description:
        changes["description"] = description
    if requires_mfa is not None and requires_mfa != role.requires_mfa:
        changes["requires_mfa"] = requires_mfa
    if not changes:
        return role
    role_hand_on_check(actor, role.permissions, what=f"role {role.name}")
    role_hand_on_check(actor, changes.get("permissions", ()), what=f"role {role.name}")  # type: ignore[arg-type]
    previous_name, previous_permissions = role.name, tuple(role.permissions)
    try:
        with transaction.atomic():
            for field, value in changes.items():
                setattr(role, field, value)
            role.save(update_fields=[*changes, "updated_at"])
            publish(
                RoleUpdated(
                    role_id=role.id,
                    role_name=role.name,
                    changed=tuple(changes),
                    permissions=tuple(role.permissions),
                    requires_mfa=role.requires_mfa,
                    previous_name=previous_name if "name" in changes else None,
                    previous_permissions=(
                        previous_permissions if "permissions" in changes else None
                    ),
                    **_common(actor),
                )
            )
            cache_invalidate()
    except IntegrityError:
        raise ConflictError(
            "A role with that name exists.", fields={"name": ["already exists"]}
        ) from None
    return role


def role_delete(*, actor: Actor, role_id: uuid.UUID) -> None:
    require(actor, MANAGE)
    role = selectors.role_get(role_id=role_id)
    if role.built_in:
        raise ApplicationError(
            f"{role.name} is a built-in role and cannot be deleted.", code="built_in_role"
        )
    role_hand_on_check(actor, role.permissions, what=f"role {role.name}")
    with transaction.atomic():
        removed = role.assignments.count()
        role_id, name, patterns = role.id, role.name, tuple(role.permissions)
        role.delete()
        publish(
            RoleDeleted(
                role_id=role_id,
                role_name=name,
                permissions=patterns,
                assignments_removed=removed,
                **_common(actor),
            )
        )
        cache_invalidate()


# --- Assignments ------------------------------------------------------------------------


def role_assignment_create(
    *, actor: Actor, role: str, user: str | None = None, group: str | None = None
) -> RoleAssignment:
    """Give ``role`` (id or name) to a user (id or email) or to a group (name)."""
    require(actor, MANAGE)
    if (user is None) == (group is None):
        raise _invalid("user", "Give either a user or a group.")
    found_role = selectors.role_find(reference=role)
    if found_role is None:
        raise _invalid("role", f"No role {role}.")
    found_user = found_group = None
    if user is not None:
        found_user = selectors.user_find(reference=user)
        if found_user is None:
            raise _invalid("user", f"No user {user}.")
    else:
        found_group = selectors.group_find(name=group or "")
        if found_group is None:
            raise _invalid("group", f"No group {group}.")
    role_hand_on_check(actor, found_role.permissions, what=f"role {found_role.name}")
    holder = {"user": found_user} if found_user is not None else {"group": found_group}
    if RoleAssignment.objects.filter(role=found_role, **holder).exists():
        raise ConflictError("That role is already assigned.", fields={"role": ["already assigned"]})
    try:
        with transaction.atomic():
            assignment = RoleAssignment.objects.create(
                role=found_role,
                created_by_id=actor.user_id,
                **holder,
            )
            publish(
                RoleAssigned(
                    assignment_id=assignment.id,
                    role_id=found_role.id,
                    role_name=found_role.name,
                    user_id=found_user.pk if found_user else None,
                    group_name=found_group.name if found_group else None,
                    **_common(actor),
                )
            )
            cache_invalidate()
    except IntegrityError:
        raise ConflictError(
            "That role is already assigned.", fields={"role": ["already assigned"]}
        ) from None
    return assignment


def role_assignment_delete(*, actor: Actor, assignment_id: uuid.UUID) -> None:
    require(actor, MANAGE)
    assignment = selectors.assignment_get(assignment_id=assignment_id)
    role = assignment.role
    role_hand_on_check(actor, role.permissions, what=f"role {role.name}")
    with transaction.atomic():
        event = RoleUnassigned(
            assignment_id=assignment.id,
            role_id=role.id,
            role_name=role.name,
            user_id=assignment.user_id,
            group_name=assignment.group.name if assignment.group_id else None,
            **_common(actor),
        )
        assignment.delete()
        publish(event)
        cache_invalidate()


# --- Object grants ----------------------------------------------------------------------


def _grant_target(
    *, principal: str, action: str, resource_type: str, resource_id: str
) -> tuple[User | Group, str, str]:
    problems: dict[str, list[str]] = {}
    if action not in catalogue():
        problems["action"] = [f"{action!r} is not a declared permission."]
    if not RESOURCE_TYPE.match(resource_type):
        problems["resource_type"] = ["Use '<app_label>.<model>', e.g. 'memory.space'."]
    if not resource_id or len(resource_id) > selectors.MAX_RESOURCE_ID_LENGTH:
        problems["resource_id"] = [f"Give 1–{selectors.MAX_RESOURCE_ID_LENGTH} characters."]
    holder = _principal_find(principal)
    if holder is None:
        problems["principal"] = [
            f"No user or group {principal!r}: give a user id or email, or a group name "
            "(or 'group:<name>')."
        ]
    if problems:
        raise ApplicationError("Invalid grant.", fields=problems, code="invalid")
    return holder, action, resource_type  # type: ignore[return-value]


def _principal_find(reference: str) -> User | Group | None:
    """ "group:<name>" or "user:<id or email>", else a user id or email, else a group name."""
    kind, sep, rest = reference.partition(":")
    if sep and kind == "group":
        return selectors.group_find(name=rest)
    if sep and kind == "user":
        return selectors.user_find(reference=rest)
    return selectors.user_find(reference=reference) or selectors.group_find(name=reference)


def grant_add(
    *, actor: Actor, principal: str, action: str, resource_type: str, resource_id: str
) -> tuple[selectors.Grant, bool]:
    """Allow ``action`` on one object to a user or group; returns (grant, created)."""
    require(actor, MANAGE)
    holder, action, resource_type = _grant_target(
        principal=principal, action=action, resource_type=resource_type, resource_id=resource_id
    )
    if not holds(actor, action, Resource(type=resource_type, id=resource_id)):
        _refuse_hand_on(actor, [action], what=f"a grant on {resource_type} {resource_id}")
    app_label, _, model = resource_type.partition(".")
    with transaction.atomic():
        # Resources belong to other contexts: their content type may have no model class here.
        content_type, _ = ContentType.objects.get_or_create(app_label=app_label, model=model)
        permission, _ = Permission.objects.get_or_create(
            content_type=content_type,
            codename=action,
            defaults={"name": f"Can {action} ({resource_type})"[:255]},
        )
        existing = selectors.grant_row(
            principal=holder, permission=permission, resource_id=resource_id
        )
        if existing is not None:
            return selectors.grant_of(existing, holder), False
        model_class = GroupObjectPermission if isinstance(holder, Group) else UserObjectPermission
        holder_field = "group" if isinstance(holder, Group) else "user"
        # bulk_create skips guardian's save(), which would load the object through its model.
        (row,) = model_class.objects.bulk_create(
            [
                model_class(
                    permission=permission,
                    content_type=content_type,
                    object_pk=resource_id,
                    **{holder_field: holder},
                )
            ]
        )
        grant = selectors.grant_of(row, holder)
        publish(GrantAdded(**_grant_payload(grant), **_common(actor)))
        cache_invalidate()
    return grant, True


def grant_remove(
    *, actor: Actor, principal: str, action: str, resource_type: str, resource_id: str
) -> selectors.Grant:
    require(actor, MANAGE)
    holder, action, resource_type = _grant_target(
        principal=principal, action=action, resource_type=resource_type, resource_id=resource_id
    )
    if not holds(actor, action, Resource(type=resource_type, id=resource_id)):
        _refuse_hand_on(actor, [action], what=f"a grant on {resource_type} {resource_id}")
    app_label, _, model = resource_type.partition(".")
    permission = Permission.objects.filter(
        content_type__app_label=app_label, content_type__model=model, codename=action
    ).first()
    row = (
        selectors.grant_row(principal=holder, permission=permission, resource_id=resource_id)
        if permission is not None
        else None
    )
    if row is None:
        raise NotFoundError("No such grant.")
    grant = selectors.grant_of(row, holder)
    with transaction.atomic():
        row.delete()
        publish(GrantRemoved(**_grant_payload(grant), **_common(actor)))
        cache_invalidate()
    return grant


def _grant_payload(grant: selectors.Grant) -> dict:
    return {
        "grant_id": grant.id,
        "principal_type": grant.principal_type,
        "principal_id": grant.principal_id,
        "action": grant.action,
        "resource_type": grant.resource_type,
        "resource_id": grant.resource_id,
    }


# --- Grants on people's objects (contexts share their objects through these) ------------


def _object_grants_plan(
    *,
    actor: Actor,
    principal: str,
    resource: Resource,
    actions: Iterable[str],
    among: Iterable[str],
    share_action: str,
    owner_id: uuid.UUID | None,
    manage: str | None,
) -> tuple[User | Group, str, dict[str, selectors.Grant], set[str], set[str]]:
    """Check a change of grants (refusals audited and raised); (holder, resource type,
    current grants by action, wanted actions, actions that change)."""
    wanted, among = set(actions), set(among)
    rules = {"owner_id": owner_id, "manage": manage}
    object_require(actor, share_action, resource, **rules)
    if not wanted <= among:
        raise _invalid("actions", f"Only {', '.join(sorted(among))} can be granted here.")
    holder, _, resource_type = _grant_target(
        principal=principal,
        action=share_action,
        resource_type=resource.type,
        resource_id=str(resource.id or ""),
    )
    if isinstance(holder, User) and owner_id is not None and holder.pk == owner_id:
        raise _invalid("principal", "That is the owner, who holds every permission already.")
    current = {
        grant.action: grant
        for grant in _grants_of_holder(
            holder, resource_type=resource_type, resource_id=str(resource.id)
        )
        if grant.action in among
    }
    changed = wanted.symmetric_difference(current)
    missing = sorted(a for a in changed if not object_holds(actor, a, resource, **rules))
    if missing:
        _refuse_hand_on(actor, missing, what=f"a grant on {resource_type} {resource.id}")
    return holder, resource_type, current, wanted, changed


def object_grants_check(
    *,
    actor: Actor,
    principal: str,
    resource: Resource,
    actions: Iterable[str],
    among: Iterable[str],
    share_action: str,
    owner_id: uuid.UUID | None,
    manage: str | None,
) -> None:
    """Refuse (audited) what ``object_grants_set`` with the same arguments would refuse.

    Call it before opening the transaction that makes the change, so that rolling that
    transaction back does not take the ``AccessDenied`` with it.
    """
    _object_grants_plan(
        actor=actor,
        principal=principal,
        resource=resource,
        actions=actions,
        among=among,
        share_action=share_action,
        owner_id=owner_id,
        manage=manage,
    )


def object_grants_set(
    *,
    actor: Actor,
    principal: str,
    resource: Resource,
    actions: Iterable[str],
    among: Iterable[str],
    share_action: str,
    owner_id: uuid.UUID | None,
    manage: str | None,
) -> list[selectors.Grant]:
    """Make ``principal``'s grants on ``resource`` exactly ``actions`` among ``among``.

    For a context sharing one of its person-owned objects (``object_authorize``'s rules):
    the actor needs ``share_action`` on the object, and may add or take away only the
    actions it holds there itself. The owner needs no grant and cannot be given one.
    Returns the principal's grants on the object afterwards.
    """
    holder, resource_type, current, _, changed = _object_grants_plan(
        actor=actor,
        principal=principal,
        resource=resource,
        actions=actions,
        among=among,
        share_action=share_action,
        owner_id=owner_id,
        manage=manage,
    )
    resource_id = str(resource.id)
    if not changed:
        return list(current.values())
    app_label, _, model = resource_type.partition(".")
    with transaction.atomic():
        content_type, _ = ContentType.objects.get_or_create(app_label=app_label, model=model)
        for action in sorted(changed):
            permission, _ = Permission.objects.get_or_create(
                content_type=content_type,
                codename=action,
                defaults={"name": f"Can {action} ({resource_type})"[:255]},
            )
            if action in current:
                row = selectors.grant_row(
                    principal=holder, permission=permission, resource_id=resource_id
                )
                if row is not None:
                    row.delete()
                publish(GrantRemoved(**_grant_payload(current.pop(action)), **_common(actor)))
                continue
            model_class = (
                GroupObjectPermission if isinstance(holder, Group) else UserObjectPermission
            )
            holder_field = "group" if isinstance(holder, Group) else "user"
            (row,) = model_class.objects.bulk_create(
                [
                    model_class(
                        permission=permission,
                        content_type=content_type,
                        object_pk=resource_id,
                        **{holder_field: holder},
                    )
                ]
            )
            grant = selectors.grant_of(row, holder)
            current[action] = grant
            publish(GrantAdded(**_grant_payload(grant), **_common(actor)))
        cache_invalidate()
    return list(current.values())


def _grants_of_holder(
    holder: User | Group, *, resource_type: str, resource_id: str
) -> list[selectors.Grant]:
    if isinstance(holder, Group):
        return selectors.grant_list(
            resource_type=resource_type, resource_id=resource_id, group=holder.name
        )
    return selectors.grant_list(
        resource_type=resource_type, resource_id=resource_id, user_id=holder.pk
    )


def object_grants_clear(*, actor: Actor, resource_type: str, resource_id: str) -> int:
    """Remove every grant on an object that is gone (its context deleted it)."""
    grants = selectors.grant_list(resource_type=resource_type, resource_id=resource_id)
    if not grants:
        return 0
    app_label, _, model = resource_type.partition(".")
    common = {
        "content_type__app_label": app_label,
        "content_type__model": model,
        "object_pk": resource_id,
    }
    with transaction.atomic():
        UserObjectPermission.objects.filter(**common).delete()
        GroupObjectPermission.objects.filter(**common).delete()
        for grant in grants:
            publish(GrantRemoved(**_grant_payload(grant), **_common(actor)))
        cache_invalidate()
    return len(grants)
