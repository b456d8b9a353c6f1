"""Reads for RBAC: roles, assignments, object grants, and what ``authorize`` loads per user."""

from __future__ import annotations

import dataclasses
import uuid

from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.models import Q, QuerySet
from guardian.models import GroupObjectPermission, UserObjectPermission

from lumina.kernel.errors import NotFoundError
from lumina.security.models.rbac import Role, RoleAssignment
from lumina.security.models.users import User

# guardian keeps object ids in a CharField of this length.
MAX_RESOURCE_ID_LENGTH = 255


@dataclasses.dataclass(frozen=True)
class HeldRole:
    name: str
    requires_mfa: bool
    permissions: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Grant:
    """An object-level grant; ``id`` is "user-<n>" or "group-<n>" (guardian's row)."""

    id: str
    principal_type: str
    # The user's UUID as text, or the group's name.
    principal_id: str
    principal_label: str
    action: str
    resource_type: str
    resource_id: str


def role_list() -> QuerySet[Role]:
    return Role.objects.order_by("name")


def role_get(*, role_id: uuid.UUID) -> Role:
    role = Role.objects.filter(pk=role_id).first()
    if role is None:
        raise NotFoundError(f"No role {role_id}.")
    return role


def role_find(*, reference: str) -> Role | None:
    """A role by id or (case-insensitive) name."""
    try:
        return Role.objects.filter(pk=uuid.UUID(reference)).first()
    except ValueError:
        return Role.objects.filter(name__iexact=reference).first()


def assignment_list(
    *, role_id: uuid.UUID | None = None, user_id: uuid.UUID | None = None, group: str | None = None
) -> QuerySet[RoleAssignment]:
    rows = RoleAssignment.objects.select_related("role", "user", "group").order_by("-created_at")
    if role_id is not None:
        rows = rows.filter(role_id=role_id)
    if user_id is not None:
        rows = rows.filter(user_id=user_id)
    if group is not None:
        rows = rows.filter(group__name=group)
    return rows


def assignment_get(*, assignment_id: uuid.UUID) -> RoleAssignment:
    row = RoleAssignment.objects.select_related("role", "user", "group").filter(pk=assignment_id)
    assignment = row.first()
    if assignment is None:
        raise NotFoundError(f"No role assignment {assignment_id}.")
    return assignment


def user_find(*, reference: str) -> User | None:
    """A user by id or (case-insensitive) email."""
    try:
        return User.objects.filter(pk=uuid.UUID(reference)).first()
    except ValueError:
        return User.objects.filter(email__iexact=reference).first()


def group_find(*, name: str) -> Group | None:
    return Group.objects.filter(name=name).first()


# --- What authorize() caches per user ---------------------------------------------------


def roles_held(*, user_id: uuid.UUID) -> list[HeldRole]:
    """The roles a user holds directly or through any of their groups (one query)."""
    rows = (
        Role.objects.filter(Q(assignments__user_id=user_id) | Q(assignments__group__user=user_id))
        .distinct()
        .order_by("name")
        .values_list("name", "requires_mfa", "permissions")
    )
    return [HeldRole(name, requires_mfa, tuple(patterns)) for name, requires_mfa, patterns in rows]


def group_ids_of(*, user_id: uuid.UUID) -> tuple[int, ...]:
    through = User.groups.through
    return tuple(through.objects.filter(user_id=user_id).values_list("group_id", flat=True))


# --- Object grants (guardian's generic tables) ------------------------------------------


def permission_id_for(*, resource_type: str, action: str) -> int | None:
    """The ``auth.Permission`` row standing for ``action`` on ``resource_type``, if any."""
    app_label, _, model = resource_type.partition(".")
    return (
        Permission.objects.filter(
            content_type__app_label=app_label, content_type__model=model, codename=action
        )
        .values_list("id", flat=True)
        .first()
    )


def object_grant_find(
    *, user_id: uuid.UUID, group_ids: tuple[int, ...], permission_id: int, resource_id: str
) -> str | None:
    """The id of a grant of ``permission_id`` on ``resource_id`` to the user or their groups.

    One query over guardian's unique (principal, permission, object_pk) indexes, in SQL
    because this sits on the request path and the ORM's union costs more than the query.
    """
    if len(resource_id) > MAX_RESOURCE_ID_LENGTH:
        return None
    users = UserObjectPermission._meta.db_table
    groups = GroupObjectPermission._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 'user', id FROM {users}"  # noqa: S608 (table names from the models)
            " WHERE user_id = %s AND permission_id = %s AND object_pk = %s"
            f" UNION ALL SELECT 'group', id FROM {groups}"
            " WHERE group_id = ANY(%s) AND permission_id = %s AND object_pk = %s LIMIT 1",
            [user_id, permission_id, resource_id, list(group_ids), permission_id, resource_id],
        )
        row = cursor.fetchone()
    return f"{row[0]}-{row[1]}" if row else None


def grant_list(
    *,
    resource_type: str | None = None,
    resource_id: str | None = None,
    user_id: uuid.UUID | None = None,
    group: str | None = None,
    action: str | None = None,
) -> list[Grant]:
    """Object grants matching every filter given, users' grants first."""
    common = Q()
    if resource_type is not None:
        app_label, _, model = resource_type.partition(".")
        common &= Q(content_type__app_label=app_label, content_type__model=model)
    if resource_id is not None:
        common &= Q(object_pk=resource_id)
    if action is not None:
        common &= Q(permission__codename=action)
    grants: list[Grant] = []
    if group is None:
        users = UserObjectPermission.objects.filter(common)
        if user_id is not None:
            users = users.filter(user_id=user_id)
        for row in users.select_related("user", "permission", "content_type").order_by("id"):
            grants.append(_grant("user", row, str(row.user_id), row.user.email))
    if user_id is None:
        groups = GroupObjectPermission.objects.filter(common)
        if group is not None:
            groups = groups.filter(group__name=group)
        for row in groups.select_related("group", "permission", "content_type").order_by("id"):
            grants.append(_grant("group", row, row.group.name, row.group.name))
    return grants


def grant_row(
    *, principal: User | Group, permission: Permission, resource_id: str
) -> UserObjectPermission | GroupObjectPermission | None:
    if isinstance(principal, Group):
        return GroupObjectPermission.objects.filter(
            group=principal, permission=permission, object_pk=resource_id
        ).first()
    return UserObjectPermission.objects.filter(
        user=principal, permission=permission, object_pk=resource_id
    ).first()


def content_type_for(*, resource_type: str) -> ContentType | None:
    app_label, _, model = resource_type.partition(".")
    return ContentType.objects.filter(app_label=app_label, model=model).first()


def grant_of(row: UserObjectPermission | GroupObjectPermission, principal: User | Group) -> Grant:
    if isinstance(principal, Group):
        return _grant("group", row, principal.name, principal.name)
    return _grant("user", row, str(principal.pk), principal.email)


def _grant(
    kind: str, row: UserObjectPermission | GroupObjectPermission, principal_id: str, label: str
) -> Grant:
    content_type = row.content_type
    return Grant(
        id=f"{kind}-{row.pk}",
        principal_type=kind,
        principal_id=principal_id,
        principal_label=label,
        action=row.permission.codename,
        resource_type=f"{content_type.app_label}.{content_type.model}",
        resource_id=row.object_pk,
    )


def object_ids_granted(
    *, user_id: uuid.UUID, group_ids: tuple[int, ...], resource_type: str, action: str
) -> list[str]:
    """Ids of the objects of ``resource_type`` with a grant of ``action`` to the user or
    their groups."""
    permission_id = permission_id_for(resource_type=resource_type, action=action)
    if permission_id is None:
        return []
    users = UserObjectPermission.objects.filter(user_id=user_id, permission_id=permission_id)
    groups = GroupObjectPermission.objects.filter(
        group_id__in=group_ids, permission_id=permission_id
    )
    return list(
        users.values_list("object_pk", flat=True).union(groups.values_list("object_pk", flat=True))
    )
