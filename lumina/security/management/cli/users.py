"""``security user create|unlock``: make a user (staff, superuser, a role); lift a lockout."""

from __future__ import annotations

import getpass

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from lumina.kernel.errors import ApplicationError
from lumina.security.selectors.auth import user_by_email
from lumina.security.services.auth import account_unlock
from lumina.security.services.rbac import role_assignment_create
from lumina.security.services.users import user_create
from lumina.security.types import Actor


def register(commands) -> None:
    user = commands.add_parser("user", help="Manage users.")
    actions = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="Create a user.")
    create.add_argument("email")
    create.add_argument("--password", help="Prompted for when omitted.")
    create.add_argument("--staff", action="store_true", help="May use the admin console.")
    create.add_argument("--superuser", action="store_true")
    create.add_argument("--role", metavar="NAME", help="Assign this role (e.g. Admin) too.")
    create.set_defaults(handler=create_user)
    unlock = actions.add_parser("unlock", help="Lift a lockout after failed sign-ins.")
    unlock.add_argument("email")
    unlock.set_defaults(handler=unlock_user)


def create_user(
    command: BaseCommand,
    *,
    email: str,
    password: str | None,
    staff: bool,
    superuser: bool,
    role: str | None = None,
    **_,
) -> None:
    if password is None:
        password = getpass.getpass("Password: ")
    try:
        # One transaction: an unknown role leaves no half-made user behind.
        with transaction.atomic():
            user = user_create(
                email=email, password=password, is_staff=staff, is_superuser=superuser
            )
            if role:
                role_assignment_create(actor=Actor.system("cli"), role=role, user=str(user.pk))
    except (ValidationError, ValueError) as exc:
        raise CommandError(f"cannot create {email}: {exc}") from None
    except ApplicationError as exc:
        problems = "; ".join(" ".join(messages) for messages in exc.fields.values())
        raise CommandError(f"cannot create {email}: {problems or exc.message}") from None
    command.stdout.write(
        f"created {user.email} ({user.id})" + (f" with role {role}" if role else "")
    )


def unlock_user(command: BaseCommand, *, email: str, **_) -> None:
    user = user_by_email(email=email)
    if user is None:
        raise CommandError(f"no user {email}")
    account_unlock(user_id=user.pk, actor=Actor.system("cli"))
    command.stdout.write(f"unlocked {user.email}")
