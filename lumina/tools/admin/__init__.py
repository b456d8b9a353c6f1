"""Admin console pages of the tools context, one module per area."""

from lumina.tools.admin import executions, mcp_servers, registry  # noqa: F401
