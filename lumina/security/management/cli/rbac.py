"""``security role list|seed|assign|unassign``: roles from the command line.

The way back in when nobody left can manage roles through the API. Commands act as
the system actor ``cli``: whoever runs ``manage.py`` already controls the deployment.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from lumina.kernel.errors import ApplicationError
from lumina.security.selectors.rbac import assignment_list, role_find, role_list, user_find
from lumina.security.services.rbac import (
    role_assignment_create,
    role_assignment_delete,
    roles_seed_builtin,
)
from lumina.security.types import Actor

CLI_ACTOR = Actor.system("cli")


def register(commands) -> None:
    role = commands.add_parser("role", help="Manage roles and role assignments.")
    actions = role.add_subparsers(dest="role_command", required=True, metavar="ACTION")

    actions.add_parser("list", help="Roles, their permissions and holders.").set_defaults(
        handler=list_roles
    )
    actions.add_parser("seed", help="Create or restore the built-in roles.").set_defaults(
        handler=seed_roles
    )
    for name, handler, text in (
        ("assign", assign_role, "Give a role to a user."),
        ("unassign", unassign_role, "Take a role from a user."),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("role", metavar="ROLE", help="Role name or id.")
        action.add_argument("--user", required=True, metavar="EMAIL")
        action.set_defaults(handler=handler)


def list_roles(command: BaseCommand, **_) -> None:
    for role in role_list():
        holders = [
            assignment.user.email if assignment.user_id else f"group:{assignment.group.name}"
            for assignment in assignment_list(role_id=role.id)
        ]
        flags = " (built-in)" if role.built_in else ""
        flags += " (requires MFA)" if role.requires_mfa else ""
        command.stdout.write(f"{role.name}{flags}: {', '.join(role.permissions)}")
        command.stdout.write(f"  held by: {', '.join(holders) or '-'}")


def seed_roles(command: BaseCommand, **_) -> None:
    roles = roles_seed_builtin()
    command.stdout.write(f"built-in roles: {', '.join(role.name for role in roles)}")


def assign_role(command: BaseCommand, *, role: str, user: str, **_) -> None:
    try:
        role_assignment_create(actor=CLI_ACTOR, role=role, user=user)
    except ApplicationError as error:
        raise CommandError(_describe(error)) from None
    command.stdout.write(f"assigned {role} to {user}")


def unassign_role(command: BaseCommand, *, role: str, user: str, **_) -> None:
    found_role, found_user = role_find(reference=role), user_find(reference=user)
    if found_role is None or found_user is None:
        raise CommandError(f"no role {role!r}" if found_role is None else f"no user {user!r}")
    assignment = assignment_list(role_id=found_role.id, user_id=found_user.pk).first()
    if assignment is None:
        raise CommandError(f"{user} does not hold {found_role.name} directly")
    role_assignment_delete(actor=CLI_ACTOR, assignment_id=assignment.id)
    command.stdout.write(f"unassigned {found_role.name} from {user}")


def _describe(error: ApplicationError) -> str:
    details = "; ".join(f"{field}: {' '.join(texts)}" for field, texts in error.fields.items())
    return f"{error.message} ({details})" if details else error.message
