"""The DTOs of MCP tool sources that cross ``lumina.tools.api``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid


@dataclasses.dataclass(frozen=True)
class McpServerDTO:
    """A registered MCP server. Its environment and headers are secrets: never shown."""

    id: uuid.UUID
    name: str
    transport: str
    command: tuple[str, ...]
    url: str
    enabled: bool
    timeout_seconds: float
    has_env: bool
    has_headers: bool
    tool_names: tuple[str, ...]
    last_synced_at: dt.datetime | None
    last_error: str
    owner_id: uuid.UUID | None
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class McpImportReport:
    """What importing a server's tools did, tool by tool (Lumina's names)."""

    server: McpServerDTO
    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    disabled: tuple[str, ...] = ()  # offered before, not any more
    skipped: tuple[tuple[str, str], ...] = ()  # (the server's name, why)
