"""``tools list|add``: the registry from the command line."""

from __future__ import annotations

import json
import pathlib
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from lumina.kernel.errors import ApplicationError
from lumina.security.api import Actor
from lumina.tools.selectors.registry import tool_dtos, tool_queryset
from lumina.tools.services.registry import tool_create
from lumina.tools.types import ToolKind

CLI_ACTOR = Actor.system("cli")


def register(commands) -> None:
    listing = commands.add_parser("list", help="Registered tools.")
    listing.add_argument("--kind", choices=[kind.value for kind in ToolKind])
    listing.add_argument(
        "--all", dest="include_disabled", action="store_true", help="Disabled tools too."
    )
    listing.add_argument(
        "--format", dest="output_format", choices=["table", "openai"], default="table",
        help="openai: the tools as OpenAI's `tools` JSON.",
    )  # fmt: skip
    listing.set_defaults(handler=list_tools)

    add = commands.add_parser("add", help="Register a tool.")
    add.add_argument("name")
    add.add_argument("--kind", required=True, choices=[kind.value for kind in ToolKind])
    add.add_argument("--description", default="")
    add.add_argument("--source", metavar="FILE", help="python: the file defining main().")
    add.add_argument("--url", dest="http_url", help="http: an allow-listed URL.")
    add.add_argument("--method", dest="http_method", default="POST")
    add.add_argument("--builtin", dest="builtin_name", help="builtin: its name.")
    add.add_argument("--input-schema", metavar="JSON|@FILE", help="JSON Schema of the arguments.")
    add.add_argument("--output-schema", metavar="JSON|@FILE", help="JSON Schema of the result.")
    add.add_argument("--timeout", dest="timeout_seconds", type=float)
    add.add_argument("--memory-mb", type=int)
    add.add_argument("--output-bytes", type=int)
    add.add_argument("--network", action="store_true", help="python: allow network access.")
    add.add_argument("--disabled", action="store_true")
    add.set_defaults(handler=add_tool)


def failed(error: ApplicationError) -> CommandError:
    details = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in error.fields.items())
    return CommandError(f"{error.message} {details}".strip())


def json_option(option: str, value: str | None) -> Any:
    if value is None:
        return None
    text = value
    if value.startswith("@"):
        try:
            text = pathlib.Path(value[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"{option}: cannot read {value[1:]}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CommandError(f"{option}: not JSON ({exc})") from None


def list_tools(
    command: BaseCommand, *, kind: str | None, include_disabled: bool, output_format: str, **_
) -> None:
    enabled = None if include_disabled else True
    tools = tool_dtos(list(tool_queryset(kind=kind, enabled=enabled)))
    if output_format == "openai":
        command.stdout.write(json.dumps([tool.openai() for tool in tools], indent=2))
        return
    if not tools:
        command.stdout.write("No tools.")
        return
    command.stdout.write(f"{'NAME':<32} {'KIND':<8} {'VERSION':>7} {'ENABLED':<7} DESCRIPTION")
    for tool in tools:
        command.stdout.write(
            f"{tool.name:<32} {tool.kind.value:<8} {tool.version:>7} "
            f"{'yes' if tool.enabled else 'no':<7} {tool.description[:60]}"
        )


def add_tool(
    command: BaseCommand,
    *,
    name: str,
    kind: str,
    source: str | None,
    input_schema: str | None,
    output_schema: str | None,
    network: bool,
    disabled: bool,
    **options: Any,
) -> None:
    fields: dict[str, Any] = {
        key: options[key]
        for key in ("description", "http_url", "http_method", "builtin_name", "timeout_seconds",
                    "memory_mb", "output_bytes")
        if options.get(key) is not None
    }  # fmt: skip
    if source is not None:
        try:
            fields["source"] = pathlib.Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"--source: cannot read {source}: {exc.strerror}") from None
    fields["input_schema"] = json_option("--input-schema", input_schema)
    fields["output_schema"] = json_option("--output-schema", output_schema)
    fields["network"] = network
    try:
        tool = tool_create(actor=CLI_ACTOR, name=name, kind=kind, enabled=not disabled, **fields)
    except ApplicationError as error:
        raise failed(error) from None
    command.stdout.write(f"Registered {tool.name} ({tool.kind.value}) v{tool.version}: {tool.id}")
