"""Registry reads: tools and their versions as DTOs and runner specs."""

from __future__ import annotations

import uuid
from functools import lru_cache
from urllib.parse import urlsplit

from django.db import connection
from django.db.models import QuerySet

from lumina.tools.models import HttpAllowEntry, Tool, ToolVersion
from lumina.tools.types import Limits, ToolDTO, ToolKind, ToolSpec


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def normalised_prefix(url: str) -> str:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme.lower()}://{host}{port}{parts.path or '/'}"


def http_url_allowed(url: str) -> bool:
    """Whether ``url`` starts with an allow-listed prefix (scheme, host and port exact)."""
    try:
        target = normalised_prefix(url)
    except ValueError:
        return False
    for prefix in HttpAllowEntry.objects.values_list("prefix", flat=True):
        listed = normalised_prefix(prefix)
        if target == listed or target.startswith(listed if listed.endswith("/") else listed + "/"):
            return True
    return False


def tool_find(key: str | uuid.UUID) -> Tool | None:
    """A tool by id or by name."""
    tool_id = key if isinstance(key, uuid.UUID) else _uuid(key)
    query = Tool.objects.select_related("mcp_server")
    if tool_id is not None:
        found = query.filter(id=tool_id).first()
        if found is not None:
            return found
    return query.filter(name=str(key)).first() if isinstance(key, str) else None


# The tool row is read on every run (enabled and the current version change), with one
# statement written once: the ORM's compiler cost ~1 ms of CPU per run for it.
_TOOL_COLUMNS = tuple(field.attname for field in Tool._meta.concrete_fields)
_TOOL_BY = {
    column: f"SELECT {', '.join(_TOOL_COLUMNS)} FROM {Tool._meta.db_table} WHERE {column} = %s"  # noqa: S608 (constants)
    for column in ("id", "name")
}
VERSION_CACHE_SIZE = 256


def _tool_row(column: str, value: object) -> Tool | None:
    with connection.cursor() as cursor:
        cursor.execute(_TOOL_BY[column], [value])
        row = cursor.fetchone()
    return Tool.from_db(connection.alias, _TOOL_COLUMNS, row) if row is not None else None


@lru_cache(maxsize=VERSION_CACHE_SIZE)
def _version(tool_id: uuid.UUID, number: int) -> ToolVersion:
    """A saved version: immutable (a change saves the next one), so kept per process.

    Raises LookupError rather than returning None, so a missing version is not cached.
    Callers never read ``.tool`` from it: that would cache a tool row that goes stale.
    """
    found = ToolVersion.objects.filter(tool_id=tool_id, number=number).first()
    if found is None:
        raise LookupError(number)
    return found


def tool_with_version(
    key: str | uuid.UUID, number: int | None = None
) -> tuple[Tool | None, ToolVersion | None]:
    """A tool by id or name with its version ``number`` (default: current).

    One statement for the tool, read fresh every time; the version, which never changes,
    from this process's cache. The tool without a version when that version does not exist.
    """
    tool_id = key if isinstance(key, uuid.UUID) else _uuid(key)
    row = _tool_row("id", tool_id) if tool_id is not None else None
    if row is None and isinstance(key, str):
        row = _tool_row("name", key)
    if row is None:
        return None, None
    try:
        return row, _version(row.id, number or row.version)
    except LookupError:
        return row, None


def version_of(tool: Tool, number: int | None = None) -> ToolVersion | None:
    return tool.versions.filter(number=number or tool.version).first()


def tool_queryset(
    *, kind: str | None = None, enabled: bool | None = None, search: str | None = None
) -> QuerySet[Tool]:
    query = Tool.objects.all()
    if kind:
        query = query.filter(kind=kind)
    if enabled is not None:
        query = query.filter(enabled=enabled)
    if search:
        query = query.filter(name__icontains=search)
    return query


def tool_dto(tool: Tool, version: ToolVersion | None = None) -> ToolDTO:
    version = version or version_of(tool)
    assert version is not None  # noqa: S101 (a tool is saved with its first version)
    return ToolDTO(
        id=tool.id,
        name=tool.name,
        kind=ToolKind(tool.kind),
        description=version.description,
        enabled=tool.enabled,
        version=version.number,
        input_schema=version.input_schema,
        output_schema=version.output_schema,
        limits=version.limits,
        owner_id=tool.owner_id,
        created_at=tool.created_at,
        updated_at=tool.updated_at,
    )


def tool_dtos(tools: list[Tool]) -> list[ToolDTO]:
    """DTOs for many tools with one query for their current versions."""
    wanted = {tool.id: tool.version for tool in tools}
    current = {
        version.tool_id: version
        for version in ToolVersion.objects.filter(tool__in=list(wanted))
        if wanted[version.tool_id] == version.number
    }
    return [tool_dto(tool, current.get(tool.id)) for tool in tools]


def tool_spec(tool: Tool, version: ToolVersion) -> ToolSpec:
    return ToolSpec(
        tool_id=tool.id,
        name=tool.name,
        version=version.number,
        kind=ToolKind(tool.kind),
        description=version.description,
        input_schema=version.input_schema,
        output_schema=version.output_schema,
        limits=Limits(
            timeout_seconds=version.timeout_seconds,
            memory_mb=version.memory_mb,
            output_bytes=version.output_bytes,
            network=version.network,
        ),
        source=version.source,
        http_url=version.http_url,
        http_method=version.http_method,
        builtin_name=version.builtin_name,
        mcp_server_id=tool.mcp_server_id,
        mcp_tool_name=version.mcp_tool_name,
    )
