"""``manage.py security …``: users, API tokens, MFA, encryption keys and the audit chain."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from lumina.security.management.cli import AREAS


class Command(BaseCommand):
    help = "Security administration: users, tokens, MFA, key rotation, audit verification."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="security_command", required=True, metavar="COMMAND")
        for area in AREAS:
            area.register(commands)

    def handle(self, *args, handler, **options) -> None:
        handler(self, **options)
