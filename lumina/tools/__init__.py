"""Tools context: tool registry, sandboxed execution, results."""
