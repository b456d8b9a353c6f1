"""``security user create``: make a user (optionally staff/superuser)."""

from __future__ import annotations

import getpass

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from lumina.security.services.users import user_create


def register(commands) -> None:
    user = commands.add_parser("user", help="Manage users.")
    actions = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="Create a user.")
    create.add_argument("email")
    create.add_argument("--password", help="Prompted for when omitted.")
    create.add_argument("--staff", action="store_true", help="May use the admin console.")
    create.add_argument("--superuser", action="store_true")
    create.set_defaults(handler=create_user)


def create_user(
    command: BaseCommand, *, email: str, password: str | None, staff: bool, superuser: bool, **_
) -> None:
    if password is None:
        password = getpass.getpass("Password: ")
    try:
        user = user_create(email=email, password=password, is_staff=staff, is_superuser=superuser)
    except (ValidationError, ValueError) as exc:
        raise CommandError(f"cannot create {email}: {exc}") from None
    command.stdout.write(f"created {user.email} ({user.id})")
