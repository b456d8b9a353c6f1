"""A stdio MCP server that reports the names of its environment variables (never values)."""

from __future__ import annotations

import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("environment")


@server.tool(description="The names of the environment variables this process has.")
def environment() -> list[str]:
    return sorted(os.environ)


if __name__ == "__main__":
    server.run("stdio")
