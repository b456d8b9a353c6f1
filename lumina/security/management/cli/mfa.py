"""``security mfa reset EMAIL``: remove a user's MFA devices, for one who lost them."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from lumina.security.selectors.auth import user_by_email
from lumina.security.services.mfa import mfa_reset


def register(commands) -> None:
    mfa = commands.add_parser("mfa", help="Multi-factor authentication.")
    actions = mfa.add_subparsers(dest="mfa_command", required=True, metavar="ACTION")
    reset = actions.add_parser(
        "reset", help="Remove every MFA device of a user (their next login needs no code)."
    )
    reset.add_argument("email")
    reset.set_defaults(handler=reset_mfa)


def reset_mfa(command: BaseCommand, *, email: str, **_) -> None:
    user = user_by_email(email=email)
    if user is None:
        raise CommandError(f"no user has the email address {email}")
    removed = mfa_reset(user=user)
    command.stdout.write(f"removed {removed} MFA device(s) of {user.email}")
