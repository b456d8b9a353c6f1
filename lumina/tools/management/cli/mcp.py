"""``tools import-mcp``: register an MCP server (or find it) and import its tools;
``tools mcp-servers``: list the registered ones."""

from __future__ import annotations

import shlex

from django.core.management.base import BaseCommand, CommandError

from lumina.kernel.errors import ApplicationError
from lumina.security.api import Actor
from lumina.tools.models import McpServer
from lumina.tools.selectors.mcp import mcp_server_dto, mcp_server_queryset
from lumina.tools.services.mcp import mcp_server_register, mcp_server_update, mcp_tools_import

# Whoever runs manage.py controls the deployment (the stdio allow-list still applies).
CLI_ACTOR = Actor.system("cli")


def register(commands) -> None:
    importing = commands.add_parser(
        "import-mcp",
        help="Import an MCP server's tools; with --stdio or --url, register the server first.",
    )
    importing.add_argument("name", help="The server's name in Lumina (its tools: NAME_<tool>).")
    source = importing.add_mutually_exclusive_group()
    source.add_argument(
        "--stdio",
        metavar="COMMAND",
        help="The program and its arguments, as one shell-quoted string "
        "(the program must be listed in LUMINA_MCP_STDIO_COMMANDS).",
    )
    source.add_argument("--url", help="A streamable HTTP endpoint, e.g. https://host/mcp.")
    importing.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="stdio (repeatable)."
    )
    importing.add_argument(
        "--header", action="append", default=[], metavar="NAME=VALUE", help="http (repeatable)."
    )
    importing.add_argument("--timeout", type=float, default=None, help="Seconds per call.")
    importing.set_defaults(handler=import_mcp)

    listing = commands.add_parser("mcp-servers", help="List the registered MCP servers.")
    listing.set_defaults(handler=list_servers)


def _pairs(option: str, values: list[str]) -> dict[str, str] | None:
    if not values:
        return None
    pairs: dict[str, str] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name:
            raise CommandError(f"--{option}: give NAME=VALUE, not {name[:40]!r}")
        pairs[name] = rest
    return pairs


def _failed(error: ApplicationError) -> CommandError:
    details = "; ".join(
        f"{key}: {' '.join(map(str, value))}" for key, value in error.fields.items()
    )
    return CommandError(f"{error.message} {details}".strip())


def import_mcp(
    command: BaseCommand,
    *,
    name: str,
    stdio: str | None,
    url: str | None,
    env: list[str],
    header: list[str],
    timeout: float | None,
    **_,
) -> None:
    env_pairs, header_pairs = _pairs("env", env), _pairs("header", header)
    try:
        exists = McpServer.objects.filter(name=name).exists()
        if stdio or url:
            if exists:
                raise CommandError(f"An MCP server named {name!r} exists; omit --stdio/--url.")
            extra = {"timeout_seconds": timeout} if timeout is not None else {}
            mcp_server_register(
                actor=CLI_ACTOR,
                name=name,
                transport="stdio" if stdio else "http",
                command=shlex.split(stdio) if stdio else None,
                url=url or "",
                env=env_pairs,
                headers=header_pairs,
                **extra,
            )
            command.stdout.write(f"registered {name}")
        elif not exists:
            raise CommandError(f"No MCP server named {name!r}: give --stdio or --url.")
        elif env_pairs is not None or header_pairs is not None or timeout is not None:
            mcp_server_update(
                actor=CLI_ACTOR,
                server=name,
                env=env_pairs,
                headers=header_pairs,
                timeout_seconds=timeout,
            )
        report = mcp_tools_import(actor=CLI_ACTOR, server=name)
    except ApplicationError as error:
        raise _failed(error) from None
    for label, names in (
        ("created", report.created),
        ("updated", report.updated),
        ("unchanged", report.unchanged),
        ("disabled", report.disabled),
    ):
        for tool in names:
            command.stdout.write(f"{label:9}  {tool}")
    for tool, reason in report.skipped:
        command.stdout.write(f"skipped    {tool}: {reason}")
    total = len(report.created) + len(report.updated) + len(report.unchanged)
    command.stdout.write(f"{name}: {total} tools offered, {len(report.disabled)} disabled")


def list_servers(command: BaseCommand, **_) -> None:
    for row in mcp_server_queryset():
        server = mcp_server_dto(row)
        where = " ".join(shlex.quote(part) for part in server.command) or server.url
        state = "enabled" if server.enabled else "disabled"
        synced = server.last_synced_at.isoformat() if server.last_synced_at else "never imported"
        command.stdout.write(
            f"{server.name}  {server.transport}  {state}  {len(server.tool_names)} tools  "
            f"{synced}  {where}"
        )
        if server.last_error:
            command.stdout.write(f"    last error: {server.last_error}")
