"""MCP server use-cases: register, change, remove a server, and import its tools.

All need ``tools.manage``. A stdio server is a program run on this host, so its program
must be one the operator listed in ``LUMINA_MCP_STDIO_COMMANDS``; an HTTP server's URL
goes through the outbound guard when saved (and again when connecting). Environment
variables and headers are sealed with ``security.api.encrypt_secret``. Importing lists the
server's tools (outside any transaction: it is a network call) and then, in one
transaction, creates a tool of kind ``mcp`` for each (``<server>_<tool>``), saves a new
version of one whose description or schemas changed, and disables those the server no
longer offers. ADR 0019.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from lumina.kernel import outbound
from lumina.kernel.bus import publish
from lumina.kernel.errors import ApplicationError, ConflictError
from lumina.security.api import Actor, authorize, encrypt_secret, forget_secret, require
from lumina.tools.events.registry import McpServerRegistered, McpServerRemoved
from lumina.tools.mcp.types import McpImportReport, McpServerDTO, McpUnavailable, RemoteTool
from lumina.tools.models import McpServer, Tool, ToolVersion
from lumina.tools.selectors.mcp import mcp_endpoint, mcp_server_dto, mcp_server_find
from lumina.tools.selectors.registry import tool_dtos, tool_queryset
from lumina.tools.services import executions
from lumina.tools.services.registry import tool_create, tool_update
from lumina.tools.types import ExecutionDTO, ToolDTO

MANAGE = "tools.manage"
MAX_COMMAND_PARTS = 64
MAX_SECRET_ENTRIES = 64
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
# Headers the transport sets itself; a registered value would break or spoof the protocol.
_RESERVED_HEADERS = frozenset(
    {"host", "content-length", "content-type", "accept", "mcp-session-id", "mcp-protocol-version"}
)
_NAME_PART = re.compile(r"[^A-Za-z0-9_-]+")


def _invalid(field: str, message: str) -> ApplicationError:
    return ApplicationError(message, fields={field: [message]})


def _check_command(command: object) -> list[str]:
    if not isinstance(command, list | tuple) or not command:
        raise _invalid("command", "Give the program and its arguments as a list of strings.")
    if len(command) > MAX_COMMAND_PARTS or not all(
        isinstance(part, str) and 0 < len(part) <= 4000 and "\x00" not in part for part in command
    ):
        raise _invalid("command", "Each part is a non-empty string of at most 4000 characters.")
    allowed = tuple(getattr(settings, "LUMINA_MCP_STDIO_COMMANDS", ()))
    if command[0] not in allowed:
        raise _invalid(
            "command",
            "This program may not be run as an MCP server: the operator lists the programs "
            "allowed in LUMINA_MCP_STDIO_COMMANDS (absolute paths).",
        )
    return list(command)


def _check_pairs(values: object, *, field: str, name_pattern: re.Pattern[str]) -> dict[str, str]:
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise _invalid(field, "Give an object of names to string values.")
    if len(values) > MAX_SECRET_ENTRIES:
        raise _invalid(field, f"At most {MAX_SECRET_ENTRIES} entries.")
    checked: dict[str, str] = {}
    for name, value in values.items():
        if not isinstance(name, str) or not name_pattern.match(name):
            raise _invalid(field, f"{str(name)[:64]!r} is not a valid name.")
        if field == "headers" and name.lower() in _RESERVED_HEADERS:
            raise _invalid(field, f"The transport sets {name} itself.")
        if not isinstance(value, str) or len(value) > 8000 or any(c in value for c in "\r\n\x00"):
            raise _invalid(
                field, f"The value of {name} must be one line of at most 8000 characters."
            )
        checked[name] = value
    return checked


def _clean(server: McpServer) -> None:
    """``full_clean`` as a 400 naming the fields, for every caller (REST, CLI, admin)."""
    try:
        server.full_clean(exclude=["command"], validate_unique=False)
    except ValidationError as error:
        fields = {
            field: [str(m) for m in messages] for field, messages in error.message_dict.items()
        }
        first = next(iter(fields.values()))[0]
        raise ApplicationError(first, fields=fields) from None


def _seal(server: McpServer, values: dict[str, str]) -> str:
    return encrypt_secret(json.dumps(values), owner=server.secret_owner) if values else ""


def mcp_server_check(
    *,
    transport: str,
    command: Sequence[str] | None = None,
    url: str = "",
    env: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[list[str], str, dict[str, str], dict[str, str]]:
    """Check how a server is reached (400 naming the field): command, URL, env, headers."""
    if transport == McpServer.Transport.STDIO:
        if url:
            raise _invalid("url", "A stdio MCP server has a command, not a URL.")
        if headers:
            raise _invalid("headers", "Headers are for an HTTP MCP server.")
        return (
            _check_command(command),
            "",
            _check_pairs(env, field="env", name_pattern=_ENV_NAME),
            {},
        )
    if transport == McpServer.Transport.HTTP:
        if command:
            raise _invalid("command", "An HTTP MCP server has a URL, not a command.")
        if env:
            raise _invalid("env", "Environment variables are for a stdio MCP server.")
        outbound.check_url(url, field="url")
        return [], url, {}, _check_pairs(headers, field="headers", name_pattern=_HEADER_NAME)
    raise _invalid("transport", "Use stdio or http.")


def mcp_server_register(
    *,
    actor: Actor,
    name: str,
    transport: str,
    command: Sequence[str] | None = None,
    url: str = "",
    env: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_seconds: float = 30.0,
    enabled: bool = True,
) -> McpServerDTO:
    require(actor, MANAGE)
    server = McpServer(
        id=uuid.uuid4(),
        name=name,
        transport=transport,
        enabled=enabled,
        timeout_seconds=timeout_seconds,
        owner_id=actor.user_id,
    )
    server.command, server.url, sealed_env, sealed_headers = mcp_server_check(
        transport=transport, command=command, url=url, env=env, headers=headers
    )
    _clean(server)
    try:
        with transaction.atomic():
            server.env_secret = _seal(server, sealed_env)
            server.headers_secret = _seal(server, sealed_headers)
            server.save(force_insert=True)
            publish(
                McpServerRegistered(
                    server_id=server.id,
                    server_name=server.name,
                    transport=server.transport,
                    actor_id=actor.user_id,
                )
            )
    except IntegrityError:
        raise ConflictError(
            f"An MCP server named '{name}' exists.", fields={"name": ["already taken"]}
        ) from None
    return mcp_server_dto(mcp_server_find(server.id))


def mcp_server_update(
    *,
    actor: Actor,
    server: str | uuid.UUID,
    enabled: bool | None = None,
    timeout_seconds: float | None = None,
    env: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> McpServerDTO:
    """Enable or disable a server, change its timeout, or replace its secrets."""
    require(actor, MANAGE)
    with transaction.atomic():
        row = McpServer.objects.select_for_update().get(id=mcp_server_find(server).id)
        if enabled is not None:
            row.enabled = enabled
        if timeout_seconds is not None:
            row.timeout_seconds = timeout_seconds
        if env is not None:
            if row.transport != McpServer.Transport.STDIO:
                raise _invalid("env", "Environment variables are for a stdio MCP server.")
            forget_secret(row.secret_owner)
            row.env_secret = _seal(row, _check_pairs(env, field="env", name_pattern=_ENV_NAME))
        if headers is not None:
            if row.transport != McpServer.Transport.HTTP:
                raise _invalid("headers", "Headers are for an HTTP MCP server.")
            forget_secret(row.secret_owner)
            row.headers_secret = _seal(
                row, _check_pairs(headers, field="headers", name_pattern=_HEADER_NAME)
            )
        _clean(row)
        row.save()
    return mcp_server_dto(mcp_server_find(row.id))


def mcp_server_delete(*, actor: Actor, server: str | uuid.UUID) -> None:
    """Remove a server and its tools; executions stay. Its secrets are shredded."""
    require(actor, MANAGE)
    with transaction.atomic():
        row = McpServer.objects.select_for_update().get(id=mcp_server_find(server).id)
        event = McpServerRemoved(server_id=row.id, server_name=row.name, actor_id=actor.user_id)
        owner = row.secret_owner
        row.delete()
        forget_secret(owner)
        publish(event)


def lumina_tool_name(server_name: str, remote_name: str) -> str:
    """``<server>_<tool>`` in the characters a tool name may hold, at most 64."""
    part = _NAME_PART.sub("_", remote_name).strip("_") or "tool"
    return f"{server_name}_{part}"[:64]


def mcp_tools_import(*, actor: Actor, server: str | uuid.UUID) -> McpImportReport:
    require(actor, MANAGE)
    row = mcp_server_find(server)
    if not row.enabled:
        raise ApplicationError(
            f"The MCP server '{row.name}' is disabled.", fields={"mcp_server": ["disabled"]}
        )
    from lumina.tools.mcp.client import list_tools  # the SDK, loaded on first use

    try:
        offered = async_to_sync(list_tools)(mcp_endpoint(row), timeout_seconds=row.timeout_seconds)
    except McpUnavailable as error:
        McpServer.objects.filter(id=row.id).update(last_error=error.message[:2000])
        raise
    return _apply_import(actor, row, offered)


def _version_values(server: McpServer, tool: RemoteTool) -> dict[str, Any]:
    return {
        "description": tool.description[:4000],
        "input_schema": dict(tool.input_schema),
        "output_schema": dict(tool.output_schema) if tool.output_schema else None,
        "mcp_tool_name": tool.name,
        "timeout_seconds": server.timeout_seconds,
    }


def _apply_import(actor: Actor, row: McpServer, offered: list[RemoteTool]) -> McpImportReport:
    created: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    disabled: list[str] = []
    skipped: list[tuple[str, str]] = []
    with transaction.atomic():
        mine = {tool.name: tool for tool in Tool.objects.filter(mcp_server=row)}
        seen: set[str] = set()
        for remote in offered:
            name = lumina_tool_name(row.name, remote.name)
            if name in seen:
                skipped.append((remote.name, f"its name {name} is taken by another of its tools"))
                continue
            values = _version_values(row, remote)
            existing = mine.get(name)
            try:
                with transaction.atomic():
                    if existing is None:
                        tool_create(
                            actor=actor, name=name, kind="mcp", mcp_server_id=row.id, **values
                        )
                        created.append(name)
                    else:
                        before = existing.version
                        after = tool_update(actor=actor, tool=existing.id, enabled=True, **values)
                        changed = after.version != before or not existing.enabled
                        (updated if changed else unchanged).append(name)
            except ConflictError:
                skipped.append((remote.name, f"a tool named {name} exists"))
                continue
            except ApplicationError as error:
                skipped.append((remote.name, error.message[:500]))
                continue
            seen.add(name)
        for name, tool in mine.items():
            if name not in seen and tool.enabled:
                tool_update(actor=actor, tool=tool.id, enabled=False)
                disabled.append(name)
        McpServer.objects.filter(id=row.id).update(last_synced_at=timezone.now(), last_error="")
    return McpImportReport(
        server=mcp_server_dto(mcp_server_find(row.id)),
        created=tuple(created),
        updated=tuple(updated),
        unchanged=tuple(unchanged),
        disabled=tuple(disabled),
        skipped=tuple(skipped),
    )


# --- Lumina as an MCP server (/mcp) -----------------------------------------------------


def mcp_gateway_tools(*, actor: Actor) -> list[ToolDTO]:
    """The enabled tools ``actor`` may execute, for ``tools/list`` on ``/mcp``."""
    rows = [
        row
        for row in tool_queryset(enabled=True)
        if authorize(actor, executions.EXECUTE, executions.resource_of(row)).allowed
    ]
    return tool_dtos(rows)


def mcp_gateway_call(
    *, actor: Actor, name: str, arguments: Mapping[str, Any]
) -> tuple[ExecutionDTO, Mapping[str, Any] | None]:
    """Run a tool for ``tools/call`` on ``/mcp``: ``execute`` itself, so it is authorised,
    checked and recorded like any other run; the MCP client waits, so never deferred."""
    execution = executions.execute(actor=actor, tool=name, arguments=arguments, asynchronous=False)
    version = ToolVersion.objects.filter(
        tool_id=execution.tool_id, number=execution.tool_version
    ).first()
    return execution, version.output_schema if version is not None else None
