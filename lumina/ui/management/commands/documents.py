"""``manage.py documents …``: export, import, compact and history of documents."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from lumina.ui.management.cli import AREAS


class Command(BaseCommand):
    help = "Documents: export, import, compact and history."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="documents_command", required=True, metavar="COMMAND")
        for area in AREAS:
            area.register(commands)

    def handle(self, *args, handler, **options) -> None:
        handler(self, **options)
