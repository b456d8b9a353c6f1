"""The tools context's tables: the registry, MCP servers and executions."""

from lumina.tools.models.executions import *  # noqa: F403
from lumina.tools.models.mcp import *  # noqa: F403
from lumina.tools.models.registry import *  # noqa: F403
