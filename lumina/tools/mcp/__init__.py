"""MCP servers as tool sources: the client side of the Model Context Protocol (ADR 0019)."""
