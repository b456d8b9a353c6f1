"""``security token create|revoke|list``: API tokens from the command line.

``token create`` prints the new token alone on its last line, so scripts can take
``tail -1``; it is shown this once and stored only as a hash.
"""

from __future__ import annotations

import datetime as dt
import re

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from lumina.kernel.errors import ApplicationError
from lumina.security.selectors.auth import user_by_email
from lumina.security.selectors.tokens import ApiTokenDTO, token_find, token_list
from lumina.security.services.tokens import token_create, token_revoke
from lumina.security.types import Actor

CLI_ACTOR = Actor.system("cli")
_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def register(commands) -> None:
    token = commands.add_parser("token", help="Manage API tokens.")
    actions = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="Create a token; prints it alone on the last line.")
    create.add_argument("--user", required=True, metavar="EMAIL")
    create.add_argument("--name", default="")
    create.add_argument(
        "--scopes", default="*", help="Comma-separated, e.g. 'providers.*,memory.read' (default *)."
    )
    create.add_argument(
        "--expires", help="A duration such as 30d, 12h, 2w, or an ISO date/datetime."
    )
    create.set_defaults(handler=create_token)

    revoke = actions.add_parser("revoke", help="Revoke a token by id or display prefix.")
    revoke.add_argument("token", metavar="ID_OR_PREFIX")
    revoke.set_defaults(handler=revoke_token)

    listing = actions.add_parser("list", help="A user's tokens.")
    listing.add_argument("--user", required=True, metavar="EMAIL")
    listing.set_defaults(handler=list_tokens)


def parse_expiry(value: str) -> dt.datetime:
    """``30d``, ``12h``, ``2w``, ``90m`` or ``45s`` from now, or an ISO date or datetime (UTC)."""
    value = value.strip()
    if match := _DURATION.fullmatch(value):
        amount, unit = match.groups()
        return timezone.now() + dt.timedelta(**{_UNITS[unit]: int(amount)})
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--expires: {value!r} is neither a duration nor an ISO date") from None
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=dt.UTC)


def _user_id(email: str):
    user = user_by_email(email=email)
    if user is None:
        raise CommandError(f"no user {email}")
    return user.pk


def _describe(error: ApplicationError) -> str:
    details = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in error.fields.items())
    return f"{error.message} {details}".strip()


def _when(moment: dt.datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "-"


def create_token(
    command: BaseCommand, *, user: str, name: str, scopes: str, expires: str | None, **_
) -> None:
    expires_at = parse_expiry(expires) if expires else None
    try:
        issued = token_create(
            user_id=_user_id(user),
            actor=CLI_ACTOR,
            name=name,
            scopes=[scope.strip() for scope in scopes.split(",") if scope.strip()],
            expires_at=expires_at,
        )
    except ApplicationError as exc:
        raise CommandError(f"cannot create a token for {user}: {_describe(exc)}") from None
    token = issued.token
    command.stdout.write(f"created API token {token.id} for {token.user_email}")
    command.stdout.write(f"  name:    {token.name or '-'}")
    command.stdout.write(f"  prefix:  {token.prefix}")
    command.stdout.write(f"  scopes:  {', '.join(token.scopes)}")
    command.stdout.write(f"  expires: {_when(token.expires_at)}")
    command.stdout.write("The token is shown only now; store it safely:")
    command.stdout.write(issued.secret)


def revoke_token(command: BaseCommand, *, token: str, **_) -> None:
    matches = token_find(id_or_prefix=token)
    if not matches:
        raise CommandError(f"no API token {token}")
    if len(matches) > 1:
        raise CommandError(f"{token} matches {len(matches)} tokens; use the token id")
    revoked = token_revoke(token_id=matches[0].id, actor=CLI_ACTOR)
    command.stdout.write(f"revoked {revoked.prefix} ({revoked.id}) of {revoked.user_email}")


def _row(token: ApiTokenDTO) -> str:
    return "  ".join(
        (
            str(token.id),
            token.prefix,
            f"{token.status:<7}",
            f"created {_when(token.created_at)}",
            f"expires {_when(token.expires_at)}",
            f"used {_when(token.last_used_at)}",
            f"[{', '.join(token.scopes)}]",
            token.name,
        )
    )


def list_tokens(command: BaseCommand, *, user: str, **_) -> None:
    tokens = token_list(user_id=_user_id(user))
    if not tokens:
        command.stdout.write(f"{user} has no API tokens")
    for token in tokens:
        command.stdout.write(_row(token))
