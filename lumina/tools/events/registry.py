"""Events about the tool registry and MCP servers.

``name`` and ``kind`` are the event's own class attributes, so the tool's are
``tool_name`` and ``tool_kind``.
"""

from __future__ import annotations

import dataclasses
import uuid

from lumina.kernel.events import IntegrationEvent

__all__ = [
    "McpServerRegistered",
    "McpServerRemoved",
    "ToolRegistered",
    "ToolRemoved",
    "ToolUpdated",
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ToolRegistered(IntegrationEvent):
    name = "tools.ToolRegistered"
    version = 1

    tool_id: uuid.UUID
    tool_name: str
    tool_kind: str
    actor_id: uuid.UUID | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ToolUpdated(IntegrationEvent):
    """A new version of a tool was saved, or it was enabled or disabled."""

    name = "tools.ToolUpdated"
    version = 1

    tool_id: uuid.UUID
    tool_name: str
    tool_kind: str
    tool_version: int
    changed: tuple[str, ...] = ()
    actor_id: uuid.UUID | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ToolRemoved(IntegrationEvent):
    name = "tools.ToolRemoved"
    version = 1

    tool_id: uuid.UUID
    tool_name: str
    tool_kind: str
    actor_id: uuid.UUID | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class McpServerRegistered(IntegrationEvent):
    name = "tools.McpServerRegistered"
    version = 1

    server_id: uuid.UUID
    server_name: str
    transport: str
    actor_id: uuid.UUID | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class McpServerRemoved(IntegrationEvent):
    name = "tools.McpServerRemoved"
    version = 1

    server_id: uuid.UUID
    server_name: str
    actor_id: uuid.UUID | None = None
