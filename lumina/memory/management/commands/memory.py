"""``manage.py memory …``: import, export, reembed, consolidate, purge, stats."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from lumina.memory.management.cli import AREAS, STATS


class Command(BaseCommand):
    help = "Memory: import, export, reembed, consolidate, purge and stats."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="memory_command", required=True, metavar="COMMAND")
        stats = commands.add_parser("stats", help="Counts of collections, records and memories.")
        stats.set_defaults(handler=run_stats)
        for area in AREAS:
            area.register(commands)

    def handle(self, *args, handler, **options) -> None:
        handler(self, **options)


def run_stats(command, **_) -> None:
    for lines in STATS:
        for line in lines():
            command.stdout.write(line)
