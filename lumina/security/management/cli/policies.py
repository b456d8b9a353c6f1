"""``security policy list|enable|disable``: the way out of a policy that locks everyone out."""

from __future__ import annotations

import uuid

from django.core.management.base import BaseCommand, CommandError

from lumina.kernel.errors import NotFoundError
from lumina.security.selectors.policies import policy_list
from lumina.security.services.policies import policy_update
from lumina.security.types import Actor

CLI_ACTOR = Actor.system("cli")


def register(commands) -> None:
    policy = commands.add_parser("policy", help="Inspect, enable or disable policies.")
    actions = policy.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    actions.add_parser("list", help="Policies with their state and version.").set_defaults(
        handler=list_policies
    )
    for name, enabled in (("enable", True), ("disable", False)):
        action = actions.add_parser(name, help=f"{name.capitalize()} a policy.")
        action.add_argument("policy_id", metavar="ID")
        action.set_defaults(handler=set_enabled, enabled=enabled)


def list_policies(command: BaseCommand, **_) -> None:
    for policy in policy_list():
        state = "enabled" if policy.enabled else "disabled"
        command.stdout.write(f"{policy.id}  v{policy.version}  {state:8}  {policy.name}")


def set_enabled(command: BaseCommand, *, policy_id: str, enabled: bool, **_) -> None:
    try:
        policy = policy_update(actor=CLI_ACTOR, policy_id=uuid.UUID(policy_id), enabled=enabled)
    except (ValueError, NotFoundError):
        raise CommandError(f"no policy {policy_id}") from None
    command.stdout.write(f"{'enabled' if enabled else 'disabled'} {policy.name}")
