"""Registry use-cases: tools, their versions, and the HTTP tools' allow-list.

Every write needs ``tools.manage``, is validated (JSON Schemas checked, python source
compiled, an HTTP tool's URL through the outbound guard and on the allow-list, a builtin
known) and publishes its event in its transaction. A version is never changed: a change
to what a tool does or accepts saves the next version, and executions name the version
they ran.
"""

from __future__ import annotations

import ast
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction

from lumina.kernel import outbound
from lumina.kernel.bus import publish
from lumina.kernel.errors import ApplicationError, ConflictError
from lumina.security.api import Actor, require
from lumina.tools import builtins
from lumina.tools.errors import ToolNotFoundError
from lumina.tools.events.registry import ToolRegistered, ToolRemoved, ToolUpdated
from lumina.tools.models import HttpAllowEntry, McpServer, Tool, ToolVersion
from lumina.tools.schemas import schema_check
from lumina.tools.selectors.registry import (
    http_url_allowed,
    normalised_prefix,
    tool_dto,
    tool_find,
    version_of,
)
from lumina.tools.types import Limits, ToolDTO, ToolKind

MANAGE = "tools.manage"
ENTRYPOINT = "main"
MAX_SOURCE_CHARS = 200_000
# Words the REST routes use after /tools/: a tool of that name could not be addressed.
RESERVED_NAMES = frozenset(
    {"execute", "results", "run", "builtins", "http-allow-list", "mcp-servers", "mcp", "import"}
)
# What a version holds; changing any of these saves a new version.
VERSION_FIELDS = (
    "description", "input_schema", "output_schema", "source", "http_url", "http_method",
    "builtin_name", "mcp_tool_name", "timeout_seconds", "memory_mb", "output_bytes", "network",
)  # fmt: skip
DEFAULTS: dict[str, Any] = {
    "description": "",
    "input_schema": None,
    "output_schema": None,
    "source": "",
    "http_url": "",
    "http_method": "POST",
    "builtin_name": "",
    "mcp_tool_name": "",
    "timeout_seconds": Limits.timeout_seconds,
    "memory_mb": Limits.memory_mb,
    "output_bytes": Limits.output_bytes,
    "network": Limits.network,
}


def _invalid(field: str, message: str) -> ApplicationError:
    return ApplicationError(message, fields={field: [message]}, code="invalid")


# --- HTTP allow-list ---------------------------------------------------------------------


def http_allow_add(*, actor: Actor, prefix: str, description: str = "") -> HttpAllowEntry:
    require(actor, MANAGE)
    outbound.check_url(prefix, field="prefix")
    parts = urlsplit(prefix)
    if parts.query or parts.fragment or parts.username or parts.password:
        raise _invalid("prefix", "A prefix has no credentials, query or fragment.")
    entry = HttpAllowEntry(prefix=normalised_prefix(prefix), description=description)
    entry.full_clean()
    entry.save()
    return entry


def http_allow_remove(*, actor: Actor, entry_id: uuid.UUID) -> None:
    require(actor, MANAGE)
    HttpAllowEntry.objects.filter(id=entry_id).delete()


# --- Validation ---------------------------------------------------------------------------


def _check_python(source: str) -> None:
    if not source.strip():
        raise _invalid("source", "A python tool needs its source.")
    if len(source) > MAX_SOURCE_CHARS:
        raise _invalid("source", f"At most {MAX_SOURCE_CHARS} characters.")
    try:
        tree = ast.parse(source, "<tool>")
    except SyntaxError as exc:
        raise _invalid("source", f"Syntax error on line {exc.lineno}: {exc.msg}.") from None
    if not any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == ENTRYPOINT
        for node in tree.body
    ):
        raise _invalid(
            "source", f"Define a function '{ENTRYPOINT}' taking the arguments as keywords."
        )


def _check_http(url: str) -> None:
    if not url:
        raise _invalid("http_url", "An http tool needs its URL.")
    outbound.check_url(url, field="http_url")
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise _invalid("http_url", "Credentials may not be part of the URL.")
    if not http_url_allowed(url):
        raise _invalid(
            "http_url", "The URL is not on the HTTP tools' allow-list; an administrator adds it."
        )


def version_check(kind: ToolKind, values: dict[str, Any], mcp_server: McpServer | None) -> None:
    """Check and normalise a version's values in place (400 naming the field)."""
    if kind is ToolKind.BUILTIN:
        found = builtins.get(values["builtin_name"])
        if found is None:
            names = ", ".join(builtins.available()) or "none"
            raise _invalid("builtin_name", f"No builtin of that name here (available: {names}).")
        # A builtin's contracts are its own.
        values["input_schema"] = dict(found.input_schema)
        values["output_schema"] = dict(found.output_schema) if found.output_schema else None
        values["description"] = values["description"] or found.description
    if values["input_schema"] is None:
        values["input_schema"] = {"type": "object", "properties": {}}
    values["input_schema"] = schema_check(
        values["input_schema"], field="input_schema", object_root=True
    )
    if values["output_schema"] is not None:
        values["output_schema"] = schema_check(values["output_schema"], field="output_schema")
    if kind is ToolKind.PYTHON:
        _check_python(values["source"])
    elif kind is ToolKind.HTTP:
        _check_http(values["http_url"])
    elif kind is ToolKind.MCP:
        if mcp_server is None:
            raise _invalid("mcp_server", "An mcp tool names its MCP server.")
        if not values["mcp_tool_name"]:
            raise _invalid("mcp_tool_name", "An mcp tool names the tool on its server.")
    # Fields of other kinds are left empty, so a version says only what it runs.
    keep = {
        ToolKind.PYTHON: {"source"},
        ToolKind.HTTP: {"http_url", "http_method"},
        ToolKind.BUILTIN: {"builtin_name"},
        ToolKind.MCP: {"mcp_tool_name"},
    }[kind]
    for field in ("source", "http_url", "builtin_name", "mcp_tool_name"):
        if field not in keep:
            values[field] = DEFAULTS[field]


def _save_version(tool: Tool, number: int, values: dict[str, Any], actor: Actor) -> ToolVersion:
    version = ToolVersion(tool=tool, number=number, created_by=actor.user_id, **values)
    version.full_clean(exclude=["tool"])
    version.save()
    return version


# --- Tools --------------------------------------------------------------------------------


def tool_create(
    *,
    actor: Actor,
    name: str,
    kind: str,
    enabled: bool = True,
    mcp_server_id: uuid.UUID | None = None,
    **fields: Any,
) -> ToolDTO:
    require(actor, MANAGE)
    unknown = set(fields) - set(VERSION_FIELDS)
    if unknown:
        raise _invalid(sorted(unknown)[0], "Unknown field.")
    if name.lower() in RESERVED_NAMES:
        raise _invalid("name", f"'{name}' is reserved; choose another name.")
    try:
        tool_kind = ToolKind(kind)
    except ValueError:
        raise _invalid("kind", f"Use one of {', '.join(k.value for k in ToolKind)}.") from None
    server = None
    if mcp_server_id is not None:
        server = McpServer.objects.filter(id=mcp_server_id).first()
        if server is None:
            raise _invalid("mcp_server", "No such MCP server.")
    values = {**DEFAULTS, **{k: v for k, v in fields.items() if v is not None}}
    version_check(tool_kind, values, server)
    try:
        with transaction.atomic():
            tool = Tool(
                name=name,
                kind=tool_kind.value,
                enabled=enabled,
                owner_id=actor.user_id,
                mcp_server=server if tool_kind is ToolKind.MCP else None,
            )
            tool.full_clean(exclude=["mcp_server"], validate_unique=False)
            tool.save()
            version = _save_version(tool, 1, values, actor)
            publish(
                ToolRegistered(
                    tool_id=tool.id,
                    tool_name=tool.name,
                    tool_kind=tool.kind,
                    actor_id=actor.user_id,
                )
            )
    except IntegrityError:
        raise ConflictError(
            f"A tool named '{name}' exists.", fields={"name": ["already taken"]}
        ) from None
    return tool_dto(tool, version)


def _locked(key: str | uuid.UUID) -> Tool:
    found = tool_find(key)
    if found is None:
        raise ToolNotFoundError(str(key))
    return (
        Tool.objects.select_for_update(of=("self",)).select_related("mcp_server").get(id=found.id)
    )


def tool_update(
    *, actor: Actor, tool: str | uuid.UUID, enabled: bool | None = None, **fields: Any
) -> ToolDTO:
    """Change a tool: new values for version fields save the next version."""
    require(actor, MANAGE)
    unknown = set(fields) - set(VERSION_FIELDS)
    if unknown:
        raise _invalid(sorted(unknown)[0], "Unknown field.")
    with transaction.atomic():
        row = _locked(tool)
        current = version_of(row)
        assert current is not None  # noqa: S101 (a tool is saved with its first version)
        values = {field: getattr(current, field) for field in VERSION_FIELDS}
        proposed = {**values, **fields}
        changed = [field for field in VERSION_FIELDS if proposed[field] != values[field]]
        version = current
        if changed:
            version_check(ToolKind(row.kind), proposed, row.mcp_server)
            changed = [field for field in VERSION_FIELDS if proposed[field] != values[field]]
        if changed:
            row.version += 1
            version = _save_version(row, row.version, proposed, actor)
        if enabled is not None and enabled != row.enabled:
            row.enabled = enabled
            changed.append("enabled")
        if changed:
            row.save()
            publish(
                ToolUpdated(
                    tool_id=row.id,
                    tool_name=row.name,
                    tool_kind=row.kind,
                    tool_version=row.version,
                    changed=tuple(changed),
                    actor_id=actor.user_id,
                )
            )
    return tool_dto(row, version)


def tool_delete(*, actor: Actor, tool: str | uuid.UUID) -> None:
    """Remove a tool and its versions; its executions stay, naming it."""
    require(actor, MANAGE)
    with transaction.atomic():
        row = _locked(tool)
        event = ToolRemoved(
            tool_id=row.id, tool_name=row.name, tool_kind=row.kind, actor_id=actor.user_id
        )
        row.delete()
        publish(event)


def builtins_register(*, actor: Actor) -> list[ToolDTO]:
    """Register every available builtin as a tool of its own name (those missing)."""
    require(actor, MANAGE)
    created = []
    for name in builtins.available():
        if not Tool.objects.filter(name=name).exists():
            created.append(tool_create(actor=actor, name=name, kind="builtin", builtin_name=name))
    return created


def openai_tools(tools: list[ToolDTO]) -> list[Mapping[str, Any]]:
    return [tool.openai() for tool in tools]
