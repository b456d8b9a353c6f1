"""``manage.py tools …``: the tools context's command line, one module per area."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from lumina.tools.management.cli import AREAS


class Command(BaseCommand):
    help = "Tools: the registry, runs, results and MCP servers."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="tools_command", required=True, metavar="COMMAND")
        for area in AREAS:
            area.register(commands)

    def handle(self, *args, handler, **options) -> None:
        handler(self, **options)
