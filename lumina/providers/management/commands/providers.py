"""``manage.py providers …``: the registry, prices, probes and cost reports."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from lumina.providers.management.cli import AREAS


class Command(BaseCommand):
    help = "Providers: add, list, probe, import prices, report and rebuild costs."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="providers_command", required=True, metavar="COMMAND")
        for area in AREAS:
            area.register(commands)

    def handle(self, *args, handler, **options) -> None:
        handler(self, **options)
