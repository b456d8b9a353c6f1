"""MCP server reads: DTOs, and the endpoint (with its secrets opened) the client needs."""

from __future__ import annotations

import json
import uuid

from django.db.models import QuerySet

from lumina.kernel.errors import NotFoundError
from lumina.security.api import Actor, decrypt_secret
from lumina.tools.mcp.types import McpEndpoint, McpServerDTO
from lumina.tools.models import McpServer

SYSTEM_ACTOR = Actor.system("tools")


class McpServerNotFoundError(NotFoundError):
    code = "mcp_server_not_found"

    def __init__(self, key: object) -> None:
        super().__init__(
            f"There is no MCP server '{key}'.", fields={"mcp_server": ["No such MCP server."]}
        )


def mcp_server_queryset() -> QuerySet[McpServer]:
    return McpServer.objects.prefetch_related("tools")


def mcp_server_find(key: str | uuid.UUID) -> McpServer:
    """A server by id or name, or ``McpServerNotFoundError``."""
    query = mcp_server_queryset()
    try:
        found = query.filter(id=uuid.UUID(str(key))).first()
    except ValueError:
        found = None
    found = found or query.filter(name=str(key)).first()
    if found is None:
        raise McpServerNotFoundError(key)
    return found


def _opened(server: McpServer, ciphertext: str) -> dict[str, str]:
    if not ciphertext:
        return {}
    plain = decrypt_secret(ciphertext, owner=server.secret_owner, actor=SYSTEM_ACTOR)
    return json.loads(plain)


def mcp_endpoint(server: McpServer) -> McpEndpoint:
    """How the client reaches ``server``, its environment or headers decrypted."""
    if server.transport == McpServer.Transport.STDIO:
        return McpEndpoint(
            "stdio", command=tuple(server.command), env=_opened(server, server.env_secret)
        )
    return McpEndpoint("http", url=server.url, headers=_opened(server, server.headers_secret))


def mcp_server_dto(server: McpServer) -> McpServerDTO:
    return McpServerDTO(
        id=server.id,
        name=server.name,
        transport=server.transport,
        command=tuple(server.command or ()),
        url=server.url,
        enabled=server.enabled,
        timeout_seconds=server.timeout_seconds,
        has_env=bool(server.env_secret),
        has_headers=bool(server.headers_secret),
        tool_names=tuple(sorted(tool.name for tool in server.tools.all())),
        last_synced_at=server.last_synced_at,
        last_error=server.last_error,
        owner_id=server.owner_id,
        created_at=server.created_at,
        updated_at=server.updated_at,
    )
